"""The documentation site builds in strict mode, and the tutorial examples compute what the pages say.

The site is built once (``mkdocs build --strict`` in a subprocess, into a
temporary directory). The seven tutorial examples run once each, in this
process so that they share compiled JAX programs, writing their figures into
a temporary directory; their results are checked against scikit-learn, SciPy
and closed forms, and every line of output a tutorial page quotes must be one
the example printed.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import norm
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import mixtures as mx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "01-mixture-density": "tutorial_01_mixture_density",
    "02-weights": "tutorial_02_weights",
    "03-responsibilities": "tutorial_03_responsibilities",
    "04-em-steps": "tutorial_04_em_steps",
    "05-convergence": "tutorial_05_convergence",
    "06-covariance": "tutorial_06_covariance",
    "07-kmeans": "tutorial_07_kmeans",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_FIGURE_BYTES = 150_000


# -- the site ---------------------------------------------------------------------


def nav_pages(nav) -> list[str]:
    """Every Markdown file named in mkdocs.yml's nav, in order."""
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs (with directory URLs) writes the HTML of ``page``."""
    stem = page.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        return site / f"{stem}.html"
    return site / stem / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


class ConfigLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, taking tags such as ``!!python/name:`` (extension options) as None."""


ConfigLoader.add_multi_constructor("", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def config():
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=ConfigLoader)


def test_every_nav_page_is_built(site, config):
    pages = nav_pages(config["nav"])
    assert "index.md" in pages and {f"tutorial/{name}.md" for name in EXAMPLES} <= set(pages)
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
        assert built_page(site, page).is_file(), page


def test_api_page_documents_fit_parameters(site):
    html = (site / "api" / "fitting" / "index.html").read_text()
    assert 'id="mixtures.fit"' in html
    for name in inspect.signature(mx.fit).parameters:
        assert f"<code>{name}</code>" in html, f"parameter {name} of mixtures.fit is not documented"
    for documented in ("mixtures.select", "mixtures.em_step", "mixtures.FitResult", "mixtures.Progress"):
        assert f'id="{documented}"' in html, documented


def test_api_pages_render_cross_references_and_examples(site):
    for page in (site / "api").glob("*/index.html"):
        html = page.read_text()
        # Sphinx roles in the docstrings become links or code, never literal text.
        assert not re.search(r":(class|func|meth|attr|mod|data):", html), page
        assert "<autoref" not in html, page
    html = (site / "api" / "mixture" / "index.html").read_text()
    assert 'id="mixtures.Mixture.responsibilities"' in html
    # The docstrings' "Example:" sections render as code, not as a quoted paragraph.
    assert "<blockquote>" not in html
    assert '<span class="gp">&gt;&gt;&gt; </span>' in html
    # Cross-references to documented objects are links.
    assert 'href="../mixture/#mixtures.Mixture"' in (site / "api" / "fitting" / "index.html").read_text()


def test_tutorial_pages_embed_their_figures(site):
    for page, example in EXAMPLES.items():
        figure = f"{example}.png"
        assert (ROOT / "docs" / "figures" / figure).is_file(), figure
        assert (site / "figures" / figure).is_file(), figure
        html = built_page(site, f"tutorial/{page}.md").read_text()
        assert f'src="../../figures/{figure}"' in html, page


# -- the tutorial examples ---------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Runs an example's ``main`` into a temporary directory once; returns (results, printed text)."""
    out = tmp_path_factory.mktemp("figures")
    done = {}

    def run_example(page):
        if page not in done:
            module = runpy.run_path(str(ROOT / "examples" / f"{EXAMPLES[page]}.py"), run_name="tutorial_example")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                results = module["main"](out)
            done[page] = results, printed.getvalue()
        return done[page]

    return run_example


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


def same_line(quoted: str, printed: str) -> bool:
    """Equal text, and numbers equal to the digits shown or both at rounding level (< 1e-9)."""
    if NUMBER.sub("#", quoted) != NUMBER.sub("#", printed):
        return False
    for a, b in zip(NUMBER.findall(quoted), NUMBER.findall(printed)):
        a, b = float(a), float(b)
        if not (a == b or (abs(a) < 1e-9 and abs(b) < 1e-9)):
            return False
    return True


def quoted_output(page: str) -> list[str]:
    """The lines of the page's output blocks (fenced code blocks without a language)."""
    lines, language = [], None  # language: None outside a fence, else the fence's info string
    for line in (ROOT / "docs" / "tutorial" / f"{page}.md").read_text().splitlines():
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
        elif language == "" and line.strip():
            lines.append(line)
    return lines


def check_example(run, page):
    results, printed = run(page)
    figure = results["figure"]
    data = figure.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) < MAX_FIGURE_BYTES, figure
    quoted = quoted_output(page)
    assert quoted, f"{page} quotes no output of its example"
    lines = printed.splitlines()
    for line in quoted:
        assert any(same_line(line, p) for p in lines), f"{page} quotes a line the example does not print:\n{line}"
    return results


def sklearn_gaussian_mixture(mixture: mx.Mixture) -> GaussianMixture:
    """A scikit-learn GaussianMixture holding the same parameters (an independent implementation)."""
    covariance = mixture.family.covariance
    gm = GaussianMixture(len(mixture.weights), covariance_type=covariance)
    gm.weights_ = np.asarray(mixture.weights)
    gm.means_ = np.asarray(mixture.params.means)
    chol = np.asarray(mixture.params.precisions_cholesky)
    covariances = np.asarray(mixture.params.covariances)
    gm.precisions_cholesky_ = chol[0] if covariance == "tied" else chol
    gm.covariances_ = covariances[0] if covariance == "tied" else covariances
    return gm


def test_01_mixture_density(run):
    r = check_example(run, "01-mixture-density")
    reference = norm.pdf(r["grid"][:, None], [-2.0, 1.0, 4.0], [0.8, 1.2, 0.6]) @ np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(r["density"], reference, rtol=1e-12, atol=1e-300)
    assert abs(r["integral"] - 1.0) < 1e-6
    np.testing.assert_allclose(r["fractions"], [0.5, 0.3, 0.2], atol=4 * np.sqrt(0.25 / 2000))


def test_02_weights(run):
    r = check_example(run, "02-weights")
    for pi_1, x_star, resp in zip((0.5, 0.8, 0.2), r["boundaries"], r["responsibilities_at_boundaries"]):
        np.testing.assert_allclose(pi_1 * norm.pdf(x_star, -1.5, 1.0), (1 - pi_1) * norm.pdf(x_star, 1.5, 1.0), rtol=1e-12)
        np.testing.assert_allclose(resp, [0.5, 0.5], atol=1e-12)
    assert r["boundaries"][1] > 0 > r["boundaries"][2]  # the heavier component claims the middle


def test_03_responsibilities(run):
    r = check_example(run, "03-responsibilities")
    x, resp = r["x"], r["responsibilities"]
    np.testing.assert_allclose(resp, sklearn_gaussian_mixture(r["mixture"]).predict_proba(x), atol=1e-10)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(r["labels"], resp.argmax(axis=1))


def test_04_em_steps(run):
    r = check_example(run, "04-em-steps")
    assert r["e_step_difference"] < 1e-12 and max(r["m_step_difference"]) < 1e-12
    start, after = r["start"], r["after_one"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(
            2, covariance_type="full", reg_covar=1e-6, max_iter=1,
            weights_init=np.asarray(start.weights), means_init=np.asarray(start.params.means),
            precisions_init=np.asarray(start.params.precisions),
        ).fit(mx.datasets.load_old_faithful())
    np.testing.assert_allclose(np.asarray(after.weights), gm.weights_, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(after.params.means), gm.means_, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(after.params.covariances), gm.covariances_, rtol=1e-9)
    assert np.min(np.diff(r["log_likelihoods"])) >= -1e-12


@pytest.mark.slow
def test_05_convergence(run):
    r = check_example(run, "05-convergence")
    for table in (r["histories"], r["histories_3"]):
        # EM never lowers the log-likelihood; reg_covar > 0 allows decreases at the 1e-10 level.
        assert np.nanmin(np.diff(table, axis=1)) > -1e-9
    result = r["result"]
    assert bool(np.all(result.all_converged))
    x = mx.datasets.load_old_faithful()
    np.testing.assert_allclose(float(result.log_likelihood), sklearn_gaussian_mixture(result.mixture).score(x), rtol=1e-12)
    assert 0 < r["rate"] < 1
    assert len(np.unique(np.round(r["finals_3"], 4))) > 1  # K = 3 has several local maxima


@pytest.mark.slow
def test_06_covariance(run):
    r = check_example(run, "06-covariance")
    x = r["x"]
    for covariance, entry in r["fits"].items():
        gm = sklearn_gaussian_mixture(entry["mixture"])
        np.testing.assert_allclose(entry["bic"], gm.bic(x), rtol=1e-10, err_msg=covariance)
        np.testing.assert_allclose(entry["log_likelihood"], gm.score(x), rtol=1e-10, err_msg=covariance)
    bic = {c: e["bic"] for c, e in r["fits"].items()}
    assert min(bic, key=bic.get) == "full" and max(bic, key=bic.get) == "spherical"


def test_07_kmeans_is_sklearn_kmeans(run):
    r = check_example(run, "07-kmeans")
    km = KMeans(2, init=r["start_centres"], n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(r["x"])
    np.testing.assert_array_equal(r["labels"], km.labels_)
    np.testing.assert_allclose(r["centres"], km.cluster_centers_, rtol=1e-10)
    np.testing.assert_allclose(r["inertia"], km.inertia_, rtol=1e-10)
    np.testing.assert_allclose(r["inertia_from_log_likelihood"], km.inertia_, rtol=1e-8)
    sharpness = list(r["mean_max_responsibility"].values())  # σ decreasing
    assert all(a < b for a, b in zip(sharpness, sharpness[1:])) and sharpness[-1] > 1 - 1e-6
