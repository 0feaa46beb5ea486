"""The opt-in XLA:CPU fusion setting (mixtures/_src/core/xla.py), each case in a fresh interpreter.

XLA reads ``XLA_FLAGS`` once per process, when JAX starts its backends, so
every case starts its own Python.
"""

import json
import os
import subprocess
import sys
import textwrap

import jaxlib
import pytest

FUSION_OFF = "--xla_cpu_experimental_ynn_fusion_type="
ON_010 = jaxlib.__version__.startswith("0.10.")
needs_010 = pytest.mark.skipif(not ON_010, reason="the setting is applied only on jaxlib 0.10")

# Prints, as the last line, the YNN fusions in a small compiled program (0 when the fusion is off).
COUNT_FUSIONS = """
import jax, jax.numpy as jnp
def e_step(x, u):
    y = jnp.einsum("nd,kde->nke", x, u)
    return jax.nn.logsumexp(-0.5 * jnp.sum(y * y, axis=-1), axis=1).sum()
text = jax.jit(e_step).lower(jnp.ones((512, 16)), jnp.ones((4, 16, 16))).compile().as_text()
report["ynn_fusions"] = text.count("__ynn_fusion")
"""


def run(body, count_fusions=False, **env_extra):
    """Runs ``body`` in a fresh interpreter without XLA_FLAGS or MIXTURES_XLA_CPU_FUSION; returns its report."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MIXTURES_XLA_CPU_FUSION")}
    env.update(env_extra)
    script = "import json, os, warnings\nreport = {}\n" + textwrap.dedent(body)
    script += (COUNT_FUSIONS if count_fusions else "") + "\nprint(json.dumps(report))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_leaves_xla_flags_alone():
    report = run(
        """
        import mixtures, mixtures.cli, mixtures.io, mixtures.testing
        report["unset"] = os.environ.get("XLA_FLAGS")
        """,
        count_fusions=True,
    )
    assert report["unset"] is None
    if ON_010:  # XLA's default, fusion on, is what the program was compiled with
        assert report["ynn_fusions"] > 0
    other = run(
        """
        import mixtures
        report["flags"] = os.environ["XLA_FLAGS"]
        """,
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=true",
    )
    assert other["flags"] == "--xla_cpu_multi_thread_eigen=true"


@needs_010
def test_function_before_the_backends_start_turns_the_fusion_off():
    report = run(
        """
        import mixtures as mx
        report["returned"] = mx.disable_xla_cpu_fusion()
        report["again"] = mx.disable_xla_cpu_fusion()
        report["flags"] = os.environ["XLA_FLAGS"]
        """,
        count_fusions=True,
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=true",
    )
    assert report["returned"] is True and report["again"] is True
    assert report["flags"] == f"--xla_cpu_multi_thread_eigen=true {FUSION_OFF}"
    assert report["ynn_fusions"] == 0


@needs_010
def test_environment_variable_before_the_backends_start_turns_the_fusion_off():
    report = run(
        """
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            import mixtures
        report["flags"] = os.environ["XLA_FLAGS"]
        """,
        count_fusions=True,
        MIXTURES_XLA_CPU_FUSION="off",
    )
    assert report["flags"] == FUSION_OFF
    assert report["ynn_fusions"] == 0


def test_too_late_is_reported_and_changes_nothing():
    report = run(
        """
        import jax.numpy as jnp
        float(jnp.ones(2).sum())  # starts the backends
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import mixtures as mx
        report["warnings"] = [str(w.message) for w in caught if w.category is RuntimeWarning]
        try:
            mx.disable_xla_cpu_fusion()
            report["raised"] = None
        except RuntimeError as e:
            report["raised"] = str(e)
        report["lenient"] = mx.disable_xla_cpu_fusion(strict=False)
        report["flags"] = os.environ.get("XLA_FLAGS")
        """,
        MIXTURES_XLA_CPU_FUSION="off",
    )
    assert report["flags"] is None
    assert report["lenient"] is False
    assert len(report["warnings"]) == 1 and "MIXTURES_XLA_CPU_FUSION=off did not take effect" in report["warnings"][0]
    if ON_010:
        assert "after JAX started its backends" in report["raised"]


def test_an_explicit_xla_flags_choice_wins():
    report = run(
        """
        import mixtures as mx
        report["returned"] = mx.disable_xla_cpu_fusion()
        report["flags"] = os.environ["XLA_FLAGS"]
        """,
        XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=-invalid",
        MIXTURES_XLA_CPU_FUSION="off",
    )
    assert report == {"returned": False, "flags": "--xla_cpu_experimental_ynn_fusion_type=-invalid"}


def test_an_unknown_environment_value_is_an_error():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["MIXTURES_XLA_CPU_FUSION"] = "of"
    out = subprocess.run([sys.executable, "-c", "import mixtures"], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode != 0
    assert "MIXTURES_XLA_CPU_FUSION is 'of'; expected 'off'" in out.stderr


@needs_010
def test_command_line_opts_in():
    report = run(
        """
        from mixtures.cli import main
        report["status"] = main(["demo", "--components", "0"])  # an input error: no fit, no JAX work
        report["flags"] = os.environ.get("XLA_FLAGS")
        """
    )
    assert report == {"status": 2, "flags": FUSION_OFF}
