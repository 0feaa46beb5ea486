"""The command line, run as a user would (subprocess)."""

import re
import subprocess
import sys

import numpy as np
import pytest


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "mixtures.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_prints_the_fitted_old_faithful_mixture():
    out = run("demo")
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    text = out.stdout
    assert "Component 1" in text and "Component 2" in text
    assert "Old Faithful" in text and "eruptions" in text and "waiting" in text
    weights = [float(w) for w in re.findall(r"weight (\d\.\d+)", text)]
    np.testing.assert_allclose(sorted(weights), [0.3559, 0.6441], atol=2e-4)
    means = [[float(v) for v in line.split()[1:]] for line in text.splitlines() if line.strip().startswith("mean")]
    np.testing.assert_allclose(sorted(means), [[2.0364, 54.4786], [4.2897, 79.9682]], atol=2e-3)
    assert text.count("cov eruptions") == 2 and text.count("cov waiting") == 2
    ll = float(re.search(r"log-likelihood per sample: (-?\d+\.\d+)", text).group(1))
    assert abs(ll - (-4.1554)) < 1e-3
    assert "converged" in text


@pytest.mark.parametrize("args, words", [(("demo", "--components", "0"), ["n_components", "positive"]),
                                         (("demo", "--components", "300"), ["n_components", "at most"])])
def test_demo_reports_bad_options_in_one_line(args, words):
    out = run(*args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), out.stderr


def test_examples_run():
    import pathlib

    for script in sorted(pathlib.Path(__file__).parents[1].joinpath("examples").glob("*.py")):
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (script, out.stderr)
        assert "log-likelihood" in out.stdout


def test_custom_family_page_runs():
    """The code blocks of docs/custom-family.md, run in order, fit and check the family."""
    import pathlib

    page = pathlib.Path(__file__).parents[1].joinpath("docs", "custom-family.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 4
    script = "import jax\njax.config.update('jax_enable_x64', True)\n" + "\n".join(blocks)
    script += "\nprint('log-likelihood', float(result.log_likelihood))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    ll = float(out.stdout.split()[-1])
    assert -3.6 < ll < -3.4
