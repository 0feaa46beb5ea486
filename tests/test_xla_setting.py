"""The XLA:CPU fusion setting chosen at import (mixtures/xla.py), checked in a fresh interpreter."""

import os
import subprocess
import sys
import textwrap

import jaxlib

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ.pop("XLA_FLAGS", None)
    os.environ.pop("MIXTURES_KEEP_XLA_FLAGS", None)
    import mixtures
    from mixtures._src.core import xla
    imported = os.environ.get("XLA_FLAGS", "")
    again = xla.choose_cpu_fusion()  # already mentioned: unchanged
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=true"
    os.environ["MIXTURES_KEEP_XLA_FLAGS"] = "1"
    kept = xla.choose_cpu_fusion(), os.environ["XLA_FLAGS"]
    del os.environ["MIXTURES_KEEP_XLA_FLAGS"]
    import jax.numpy as jnp
    float(jnp.ones(2).sum())  # starts the backends
    late = xla.choose_cpu_fusion(), os.environ["XLA_FLAGS"]
    print(repr((imported, again, kept, late)))
    """
)


def test_fusion_setting_is_chosen_only_when_unset_and_before_the_backends_start():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MIXTURES_KEEP_XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    imported, again, kept, late = eval(out.stdout.strip().splitlines()[-1])
    on_010 = jaxlib.__version__.startswith("0.10.")
    assert imported == ("--xla_cpu_experimental_ynn_fusion_type=" if on_010 else "")
    assert again is False
    assert kept == (False, "--xla_cpu_multi_thread_eigen=true")
    assert late == (False, "--xla_cpu_multi_thread_eigen=true")
