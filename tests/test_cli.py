"""The command line, run as a user would (subprocess), against in-process references.

Each subprocess imports JAX and compiles its own programs (seconds each), so
one fit's outputs (model file, printed summary) are shared by the predict,
info and error tests through module-scoped fixtures. Errors raised before
anything is compiled are also checked in-process through ``main``.
"""

import argparse
import errno
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import mixtures as mx
from mixtures.cli import CommandError, main
from mixtures.cli import data as cli_data
from tests.helpers import mixture_log_prob, non_regular_path

ROOT = pathlib.Path(__file__).parents[1]
SCRIPT = pathlib.Path(sys.executable).parent / "mixtures"


def run(*args, cwd=None, command=None):
    command = command or [sys.executable, "-m", "mixtures.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_the_command_keeps_its_compiled_programs_in_a_per_user_cache(tmp_path):
    """Run as a program, the command caches its compiled programs under $XDG_CACHE_HOME; off when asked."""
    np.savetxt(tmp_path / "blobs.csv", blobs(), delimiter=",")
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}

    def fit(**settings):
        command = [sys.executable, "-m", "mixtures.cli", "fit", str(tmp_path / "blobs.csv"), "--components", "3"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**env, **settings})
        assert out.returncode == 0, out.stderr
        return out.stdout

    cache = tmp_path / "xdg" / "mixtures" / "jax"
    first = fit(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    kept = set(os.listdir(cache))
    assert kept and oct(cache.stat().st_mode & 0o777) == "0o700"
    assert fit(XDG_CACHE_HOME=str(tmp_path / "xdg")) == first  # read back: the same fit, nothing new compiled
    assert set(os.listdir(cache)) == kept
    fit(XDG_CACHE_HOME=str(tmp_path / "elsewhere"), MIXTURES_COMPILATION_CACHE="off")
    assert not (tmp_path / "elsewhere").exists()


def test_the_cache_directory_follows_the_documented_variables(monkeypatch, tmp_path):
    from mixtures.cli import compilation_cache_dir

    monkeypatch.delenv("MIXTURES_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir() == str(tmp_path / "xdg" / "mixtures" / "jax")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG specification says
    assert compilation_cache_dir() == str(tmp_path / ".cache" / "mixtures" / "jax")
    monkeypatch.setenv("MIXTURES_COMPILATION_CACHE", "~/mine")
    assert compilation_cache_dir() == str(tmp_path / "mine")
    for off in ("off", "OFF", "0", "false", "No"):
        monkeypatch.setenv("MIXTURES_COMPILATION_CACHE", off)
        assert compilation_cache_dir() is None


def one_line_error(out):
    """The process failed with exactly one line on stderr, ``mixtures: error: ...``, no traceback."""
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("mixtures: error: ") and "Traceback" not in out.stderr
    return lines[0]


def error_of(argv, capsys):
    """``main(argv)``'s exit status and its one stderr line (in-process)."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith("mixtures: error: "), err
    return status, err[0]


# -- data -----------------------------------------------------------------------


def blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))


def write_csv(path, x, names=("id", "a", "b")):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for i, row in enumerate(x):
            f.write(f"r{i}," + ",".join(repr(float(v)) for v in row) + "\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    x = blobs()
    write_csv(tmp / "blobs.csv", x)
    return tmp, x


@pytest.fixture(scope="module")
def fitted(files):
    """``mixtures fit`` with K = 3 in float64, saving the model and a figure, with the progress bar on."""
    tmp, x = files
    out = run(
        "fit", tmp / "blobs.csv", "--columns", "a,b", "--components", 3, "--float64", "--seed", 1,
        "--restarts", 2, "--init", "random_from_data", "--tol", 1e-8, "--max-iter", 60,
        "--out", tmp / "model.mixture", "--plot", tmp / "fit.png", "--progress",
    )
    assert out.returncode == 0, out.stderr
    return tmp, x, out


# -- fit, predict, info -----------------------------------------------------------


def test_fit_saves_the_model_mx_fit_gives_with_the_same_options(fitted):
    tmp, x, out = fitted
    reference = mx.fit(
        x, mx.Gaussian("full"), 3, key=jax.random.key(1), n_init=2, init="random_from_data", tol=1e-8, max_iter=60
    )
    saved = mx.load(tmp / "model.mixture")
    assert saved.dtype == np.float64 and saved.family == mx.Gaussian("full")
    np.testing.assert_allclose(saved.weights, reference.mixture.weights, rtol=1e-10)
    np.testing.assert_allclose(saved.params.means, reference.mixture.params.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(saved.score(x)), float(reference.log_likelihood), rtol=1e-10)
    # The summary: the log-likelihood, BIC (as mx's), iterations and every component's weight and means.
    text = out.stdout
    printed = float(re.search(r"log-likelihood\s+(-?\d+\.\d+) per row", text).group(1))
    assert abs(printed - float(reference.log_likelihood)) < 1e-6
    m = reference.mixture
    log_l = mixture_log_prob(x, m.weights, m.params.means, m.params.covariances).sum()
    bic = float(re.search(r"BIC\s+(\d+\.\d+)", text).group(1))
    assert abs(bic - (-2 * log_l + 17 * np.log(len(x)))) < 1e-3  # 3 × (2 means + 3 covariances) + 2 weights
    assert re.search(rf"EM iterations\s+{int(reference.n_iter)} \(", text)
    weights = [float(v) for v in re.search(r"\nweight((?:\s+\d\.\d+){3})", text).group(1).split()]
    np.testing.assert_allclose(weights, reference.mixture.weights, atol=1e-4)
    mean_a = [float(v) for v in re.search(r"\nmean a((?:\s+-?\d+\.\d+){3})", text).group(1).split()]
    np.testing.assert_allclose(mean_a, reference.mixture.params.means[:, 0], atol=1e-4)
    assert "converged" in text and "Model saved to" in text
    # The progress bar went to stderr and ended at the iterations of the longest restart.
    longest = int(np.max(reference.all_n_iter))
    assert f"| {longest}/{longest} [" in out.stderr
    assert (tmp / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_prints_what_the_loaded_model_predicts(fitted):
    tmp, x, _ = fitted
    model = mx.load(tmp / "model.mixture")
    out = run("predict", tmp / "model.mixture", tmp / "blobs.csv", "--columns", "2,3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "component"
    np.testing.assert_array_equal(np.array(lines[1:], int), model.predict(x))

    assert main(["predict", str(tmp / "model.mixture"), str(tmp / "blobs.csv"), "--columns", "a,b", "--proba",
                 "--out", str(tmp / "p.csv")]) == 0
    assert (tmp / "p.csv").read_text().splitlines()[0] == "p0,p1,p2"
    proba = np.loadtxt(tmp / "p.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(proba, model.responsibilities(x), rtol=1e-12, atol=1e-300)


def test_predict_into_a_closed_pipe_stops_quietly(fitted):
    """`mixtures predict ... | head`: when the reader has gone, the command stops with 141 and prints no error."""
    tmp, _, _ = fitted
    command = [sys.executable, "-m", "mixtures.cli", "predict", str(tmp / "model.mixture"), str(tmp / "blobs.csv"),
               "--columns", "2,3", "--proba"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first line (JAX's import alone takes longer)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 141, stderr.decode()
    assert stderr == b""


def test_info_describes_the_model_file(fitted):
    tmp, _, _ = fitted
    model = mx.load(tmp / "model.mixture")
    command = [str(SCRIPT)] if SCRIPT.exists() else None  # the installed console script, when there is one
    out = run("info", tmp / "model.mixture", command=command)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "mixtures.Mixture 1.0" in text and f"mixtures {mx.__version__}" in text
    assert "Gaussian(covariance='full', reg_covar=1e-06)" in text
    assert re.search(r"components K\s+3\n", text) and re.search(r"features D\s+2\n", text)
    assert re.search(r"dtype\s+float64", text) and re.search(r"free parameters\s+17\n", text)
    weights = [float(v) for v in re.search(r"\nweight((?:\s+\d\.\d+){3})", text).group(1).split()]
    np.testing.assert_allclose(weights, model.weights, atol=1e-4)


@pytest.mark.slow
def test_fit_auto_picks_the_number_of_well_separated_clusters(files):
    tmp, x = files
    np.savez(tmp / "arrays.npz", data=x, other=np.zeros(3))
    out = run(
        "fit", tmp / "arrays.npz", "--key", "data", "--components", "auto", "--k-max", 5, "--restarts", 2,
        "--out", tmp / "auto.mixture", "--plot", tmp / "auto.png",
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"components\s+3 \(chosen by BIC among 1\.\.5\)", out.stdout)
    rows = re.findall(r"^\s+(\d)\s+(-?\d+\.\d+)\s+(\d+)\s+(\d+\.\d+)", out.stdout, flags=re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    bics = [float(r[3]) for r in rows]
    assert int(np.argmin(bics)) == 2 and "<- chosen" in out.stdout
    model = mx.load(tmp / "auto.mixture")
    assert model.n_components == 3 and model.dtype == np.float32
    # The three centres are found, each within 0.5 of the truth.
    found = np.sort(np.round(np.asarray(model.params.means) / 8.0), axis=0)
    np.testing.assert_array_equal(found, [[0, 0], [0, 0], [1, 1]])
    assert (tmp / "auto.png").stat().st_size > 10_000


def test_fit_draws_one_column_as_a_histogram(files, capsys):
    tmp, x = files
    write_csv(tmp / "one.csv", x[:, :1], names=("id", "a"))
    figure = tmp / "one.png"
    argv = ["fit", tmp / "one.csv", "--columns", "a", "-k", 2, "--restarts", 1, "--plot", figure]
    assert main([str(a) for a in argv]) == 0
    assert f"Figure written to {figure}" in capsys.readouterr().out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("family", ["poisson", "categorical"])
def test_fit_other_families(files, family):
    tmp, _ = files
    rng = np.random.default_rng(1)
    z = rng.integers(0, 2, 120)
    if family == "poisson":
        x = rng.poisson(np.array([[1.0, 8.0], [12.0, 2.0]])[z])
    else:
        x = np.column_stack([np.where(z == 0, rng.integers(0, 2, 120), 2), rng.integers(0, 2, 120)])
    np.save(tmp / f"{family}.npy", x)
    out = run(
        "fit", tmp / f"{family}.npy", "--family", family, "-k", 2, "--float64", "--seed", 3, "--restarts", 2,
        "--out", tmp / f"{family}.mixture",
    )
    assert out.returncode == 0, out.stderr
    model = mx.load(tmp / f"{family}.mixture")
    if family == "poisson":
        rates = np.asarray(model.params.rates)[np.argsort(np.asarray(model.params.rates)[:, 0])]
        np.testing.assert_allclose(rates, [[1.0, 8.0], [12.0, 2.0]], rtol=0.25)
        printed = re.search(r"\nrate x1((?:\s+\d+\.\d+){2})", out.stdout).group(1).split()
        np.testing.assert_allclose([float(v) for v in printed], model.params.rates[:, 0], atol=1e-4)
    else:
        assert model.family == mx.Categorical((3, 2))  # categories inferred: largest code + 1
        assert "p(x1=2)" in out.stdout and "p(x2=1)" in out.stdout


def test_progress_without_tqdm_prints_plain_lines(monkeypatch):
    import io

    from mixtures.cli import ProgressReporter

    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = io.StringIO()
    reporter = ProgressReporter(50, 2, delay=0.0, every=0.0, stream=stream)
    for i in range(1, 4):
        reporter(mx.Progress(0, i, -3.0 + 0.1 * i))
        reporter(mx.Progress(1, i, -2.0 - 0.1 * i))
    reporter.close()
    # A line per new iteration, with the best of the restarts' latest values.
    assert stream.getvalue().splitlines() == [
        "EM iteration 1/50: log-likelihood -2.900000",
        "EM iteration 2/50: log-likelihood -2.100000",
        "EM iteration 3/50: log-likelihood -2.200000",
    ]


# -- errors -----------------------------------------------------------------------


def test_a_non_numeric_cell_is_reported_by_file_line_and_column(files):
    tmp, x = files
    text = (tmp / "blobs.csv").read_text().splitlines()
    text[5] = "r4,1.5,oops"
    (tmp / "bad.csv").write_text("\n".join(text) + "\n")
    line = one_line_error(run("fit", tmp / "bad.csv", "--columns", "a,b", "-k", 2))
    assert "bad.csv" in line and "line 6" in line and "column 3 (b)" in line and "'oops'" in line

    with pytest.raises(CommandError, match="line 6"):  # --debug lets the exception (and its traceback) through
        main(["fit", str(tmp / "bad.csv"), "--columns", "a,b", "--debug"])


def test_errors_in_process(files, fitted, capsys):
    tmp, x = files
    (tmp / "nan.csv").write_text("u,v\n1,2\n3,nan\n")
    status, line = error_of(["fit", tmp / "nan.csv", "-k", 1], capsys)
    assert status == 2 and "nan.csv" in line and "line 3" in line and "column 2 (v)" in line and "finite" in line

    status, line = error_of(["fit", tmp / "missing.csv"], capsys)
    assert status == 1 and "missing.csv" in line and "No such file" in line

    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "-k", 151], capsys)
    assert status == 2 and "--components" in line and "N = 150" in line and "151" in line

    status, line = error_of(["fit", tmp / "blobs.csv", "--family", "weibull"], capsys)
    assert status == 2 and "--family" in line and "'weibull'" in line and "gaussian" in line

    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "--family", "exponential"], capsys)
    assert status == 2 and re.search(r"line \d+, column \d \([ab]\) is -\d", line) and "positive" in line

    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,height"], capsys)
    assert status == 2 and "'height'" in line and "id, a, b" in line

    np.save(tmp / "three.npy", np.ones((4, 3)))
    status, line = error_of(["predict", tmp / "model.mixture", tmp / "three.npy"], capsys)
    assert status == 2 and "three.npy" in line and "3 columns" in line and "D = 2" in line

    damaged = bytearray((tmp / "model.mixture").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp / "damaged.mixture").write_bytes(bytes(damaged))
    for command in (["info", tmp / "damaged.mixture"], ["predict", tmp / "damaged.mixture", tmp / "three.npy"]):
        status, line = error_of(command, capsys)
        assert status == 2 and "damaged.mixture" in line and "checksum" in line

    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "--out", tmp / "no" / "dir.mixture"], capsys)
    assert status == 1 and "--out" in line and "does not exist" in line


# -- demo -----------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_picks_two_components_by_bic_and_draws_them(tmp_path):
    out = run("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    text = out.stdout
    # The BIC table: K = 1..6, K = 2 lowest and chosen.
    rows = re.findall(r"^\s+(\d)\s+(-?\d+\.\d+)\s+(\d+)\s+(\d+\.\d+)\s+\d+\s+\w+(.*)$", text, flags=re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert int(np.argmin([float(r[3]) for r in rows])) == 1 and "chosen" in rows[1][4]
    # K = 1 is one Gaussian at the sample mean and covariance: BIC = −2 log L + 5 log N.
    x = mx.datasets.load_old_faithful()
    one = multivariate_normal(x.mean(axis=0), np.cov(x.T, bias=True)).logpdf(x).sum()
    np.testing.assert_allclose(float(rows[0][3]), -2 * one + 5 * np.log(len(x)), atol=2e-3)
    assert "Component 1" in text and "Component 2" in text and "Component 3" not in text
    assert "Old Faithful" in text and "eruptions" in text and "waiting" in text
    weights = [float(w) for w in re.findall(r"weight (\d\.\d+)", text)]
    np.testing.assert_allclose(weights, [0.3559, 0.6441], atol=2e-4)
    means = [[float(v) for v in line.split()[1:]] for line in text.splitlines() if line.strip().startswith("mean")]
    np.testing.assert_allclose(means, [[2.0364, 54.4786], [4.2897, 79.9682]], atol=2e-3)
    assert text.count("cov eruptions") == 2 and text.count("cov waiting") == 2
    ll = float(re.search(r"log-likelihood per sample: (-?\d+\.\d+)", text).group(1))
    assert abs(ll - (-4.1554)) < 1e-3
    assert "Figure written to old_faithful.png" in text
    assert (tmp_path / "old_faithful.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of matplotlib now fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--components", "2", "--restarts", "2"]) == 0
    out = capsys.readouterr().out
    hints = [line for line in out.splitlines() if "matplotlib" in line]
    assert len(hints) == 1 and "pip install 'jax-mixtures[plot]'" in hints[0]
    assert "weight 0.3559" in out and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, words",
    [(("demo", "--components", "0"), ["--components", "positive"]),
     (("demo", "--components", "300"), ["--components", "at most", "N = 272"])],
)
def test_demo_reports_bad_options_in_one_line(args, words, capsys):
    status, line = error_of(args, capsys)
    assert status == 2 and all(w in line for w in words), line


def test_demo_offers_every_covariance_model():
    from mixtures.cli import demo

    assert demo.COVARIANCES == ("full", "diag", "spherical", "tied") + mx.Gaussian.MODELS


# -- examples and docs -----------------------------------------------------------------


@pytest.mark.slow
def test_examples_run(tmp_path):
    """Every example script but the tutorials', which tests/test_docs.py runs and checks against its pages.

    Those that draw a figure take its directory as their argument: here a temporary one, so that
    the run leaves docs/figures as committed.
    """
    scripts = sorted(p for p in ROOT.joinpath("examples").glob("*.py") if not p.name.startswith("tutorial_"))
    assert scripts
    for script in scripts:
        draws = "savefig" in script.read_text()
        out_dir = tmp_path / script.stem
        out = subprocess.run([sys.executable, str(script), *([str(out_dir)] if draws else [])],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (script, out.stderr)
        assert "log-likelihood" in out.stdout, script
        if draws:
            assert list(out_dir.glob("*.png")), f"{script.name} wrote no figure into {out_dir}"


@pytest.mark.slow
def test_custom_family_page_runs():
    """The code blocks of docs/custom-family.md, run in order, fit and check the family."""
    page = ROOT.joinpath("docs", "custom-family.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 4
    script = "import jax\njax.config.update('jax_enable_x64', True)\n" + "\n".join(blocks)
    script += "\nprint('log-likelihood', float(result.log_likelihood))\n"
    # The Laplace fit against EM with the exact M-step (weighted median and mean absolute
    # deviation) continued from where it stopped: within 1e-8 nats per row of that optimum.
    script += (
        "from tests.test_custom_family import exact_laplace_em\n"
        "m = laplace.mixture\n"
        "exact = exact_laplace_em(y[:, 0], np.asarray(m.weights), np.asarray(m.params.locations[:, 0]).copy(),\n"
        "                         np.asarray(m.params.scales[:, 0]).copy(), n_iter=3000)[0]\n"
        "print('laplace-gap', exact - float(laplace.log_likelihood))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    ll = float(out.stdout.split("log-likelihood")[-1].split()[0])
    assert -3.6 < ll < -3.4
    gap = float(out.stdout.split()[-1])
    assert -1e-12 <= gap <= 1e-8, gap


# -- families and their options, from the registry ------------------------------------------


def test_family_options_are_checked_against_the_family(files, capsys):
    tmp, _ = files
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "--family", "poisson", "--covariance", "diag"],
                            capsys)
    assert status == 2 and "--covariance applies to --family gaussian, not poisson" in line
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a", "--family", "categorical", "--categories", "3,x"],
                            capsys)
    assert status == 2 and "--categories must be comma-separated integers" in line and "'3,x'" in line
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "--covariance", "round"], capsys)
    assert status == 2 and line.startswith("mixtures: error: --covariance: ") and "round" in line
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "--reg-covar", "much"], capsys)
    assert status == 2 and "--reg-covar must be a number; received 'much'" in line


def test_a_registered_family_of_ones_own_is_offered_with_its_options():
    import dataclasses

    from mixtures.cli import families

    @dataclasses.dataclass(frozen=True)
    class ShiftedPoissonForCli(mx.Poisson):
        shift: int = 0

    mx.register_family(ShiftedPoissonForCli)
    offered = families.command_line_families()
    assert offered["shifted-poisson-for-cli"] is ShiftedPoissonForCli and "independent" not in offered
    parser = argparse.ArgumentParser()
    families.add_family_options(parser)
    args = parser.parse_args(["--family", "shifted-poisson-for-cli", "--shift", "3", "--min-rate", "0.5"])
    family = families.make_family(args, cli_data.Data(np.ones((2, 1)), ("x1",), "x.npy", None, (1,)))
    assert family == ShiftedPoissonForCli(min_rate=0.5, shift=3)


# -- outputs never replace what they must not; inputs must be regular files; limits are named ----------


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device"])
@pytest.mark.parametrize("option", ["fit --out", "fit --plot", "predict --out"])
def test_outputs_refuse_what_is_not_a_regular_file(fitted, tmp_path, capsys, kind, option):
    tmp, _, _ = fitted
    path = non_regular_path(tmp_path, kind)
    command, flag = option.split()
    before = os.lstat(path)
    if command == "fit":
        argv = ["fit", tmp / "blobs.csv", "--columns", "a,b", "-k", 2, "--max-iter", 2, "--no-progress", flag, path]
    else:
        argv = ["predict", tmp / "model.mixture", tmp / "blobs.csv", "--columns", "a,b", flag, path]
    status, line = error_of(argv, capsys)  # a FIFO would block here if it were opened
    assert status == 2 and flag in line and "not a regular file" in line and str(path) in line
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if kind == "symlink":
        assert (tmp_path / "precious").read_text() == "keep"


def test_outputs_never_replace_an_input(fitted, tmp_path, capsys):
    tmp, _, _ = fitted
    data = tmp_path / "data.csv"
    data.write_bytes((tmp / "blobs.csv").read_bytes())
    model = tmp_path / "model.mixture"
    model.write_bytes((tmp / "model.mixture").read_bytes())
    fit = ["fit", data, "--columns", "a,b", "-k", 2, "--max-iter", 2, "--no-progress"]
    predict = ["predict", model, data, "--columns", "a,b", "--out"]
    for argv, flag in [
        ([*fit, "--out", data], "--out"),
        ([*fit, "--plot", data], "--plot"),
        ([*fit, "--out", tmp_path / "m.mixture", "--plot", tmp_path / "m.mixture"], "--plot"),
        ([*predict, model], "--out"),
        ([*predict, tmp_path / "." / "data.csv"], "--out"),
    ]:
        status, line = error_of(argv, capsys)
        assert status == 2 and flag in line and "input file" in line
    assert data.read_bytes() == (tmp / "blobs.csv").read_bytes()
    assert model.read_bytes() == (tmp / "model.mixture").read_bytes()


def test_predict_out_is_written_atomically(fitted, tmp_path, monkeypatch, capsys):
    tmp, _, _ = fitted
    out = tmp_path / "labels.csv"
    out.write_text("old\n")
    argv = ["predict", tmp / "model.mixture", tmp / "blobs.csv", "--columns", "a,b", "--out", out]

    def failing(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savetxt", failing)
    status, line = error_of(argv, capsys)
    assert status == 1 and str(out) in line and ".tmp" not in line
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["labels.csv"]
    monkeypatch.undo()
    assert main([str(a) for a in argv]) == 0
    assert out.read_text().startswith("component\n") and os.listdir(tmp_path) == ["labels.csv"]


def test_plot_format_is_checked_before_the_fit(files, tmp_path, capsys):
    tmp, _ = files
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "-k", 2, "--plot", tmp_path / "fit.csv"], capsys)
    assert status == 2 and "--plot" in line and "'csv'" in line and "png" in line


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--seed", 2**64, "--seed must be between 0 and 9223372036854775807"),
        ("--seed", -1, "--seed must be between 0"),
        ("--max-iter", 2**31, "--max-iter must be between 1 and 2147483647"),
        ("--restarts", 10**9, "--restarts (1000000000 restarts) would need at least"),
    ],
)
def test_limits_are_named(files, capsys, option, value, words):
    tmp, _ = files
    status, line = error_of(["fit", tmp / "blobs.csv", "--columns", "a,b", "-k", 2, option, value], capsys)
    assert status == 2 and words in line


def _npy(tmp, name, cut=None):
    path = tmp / name
    np.save(path, np.ones((100, 2)))
    if cut is not None:
        path.write_bytes(path.read_bytes()[:cut])
    return path


def _npz(tmp, name, arrays, cut=None):
    path = tmp / name
    if arrays:
        np.savez(path, **arrays)
    else:
        zipfile.ZipFile(path, "w").close()
    if cut is not None:
        path.write_bytes(path.read_bytes()[: cut(path.stat().st_size)])
    return path


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda t: _npy(t, "t.npy", cut=300), "is truncated: its header declares a float64 array of shape (100, 2)"),
        (lambda t: _npy(t, "t.npy", cut=40), "is truncated: its 40 bytes end inside the .npy header"),
        (lambda t: _npz(t, "e.npz", {}), "is an .npz archive that holds no arrays"),
        (lambda t: _npz(t, "t.npz", {"x": np.ones((100, 2))}, cut=lambda n: n // 2), "the zip file is truncated or damaged"),
        (lambda t: non_regular_path(t, "fifo"), "is a FIFO (named pipe), not a regular file"),
        (lambda t: "/dev/zero", "is a character device, not a regular file"),
    ],
    ids=["npy-truncated-data", "npy-truncated-header", "npz-empty", "npz-truncated", "fifo", "dev-zero"],
)
def test_bad_input_files_are_named_accurately(tmp_path, capsys, make, words):
    path = make(tmp_path)
    status, line = error_of(["fit", path, "-k", 2], capsys)  # a FIFO or /dev/zero would block or fill memory
    assert status == 2 and words in line and str(path) in line
