"""The documentation site builds in strict mode, and the tutorial examples compute what the pages say.

The site is built once (``mkdocs build --strict`` in a subprocess, into a
temporary directory). The seven tutorial examples run once each, in this
process so that they share compiled JAX programs, writing their figures into
a temporary directory; their results are checked against scikit-learn, SciPy
and closed forms, and every line of output a tutorial page quotes must be one
the example printed.

Formulas are typeset math (``$...$``, ``$$ ... $$``, by pymdownx.arithmatex and MathJax):
every built page loads MathJax and shows no ``$`` that was not typeset, and no page's
source puts a formula in a code block. Code blocks fit the page width (88 characters).

Every ``python`` code block of README.md and of the pages runs: each page's blocks, in
order, as one script in a fresh process, in a temporary directory holding the files they
read. A block that cannot run says why in a ``<!-- not run: reason -->`` comment above it.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import io
import os
import re
import runpy
import subprocess
import sys
import textwrap
import warnings
from html.parser import HTMLParser
from pathlib import Path

import markdown
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


def load_config():
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=ConfigLoader)


@pytest.fixture(scope="module")
def config():
    return load_config()


NAV_PAGES = nav_pages(load_config()["nav"])


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


def test_text_files_hold_no_control_characters():
    """A stray control character (a Python escape like "\\v" or "\\a" written into a page) shows as nothing or junk."""
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("mixtures/**/*.py"),
             *ROOT.glob("examples/*.py"), *ROOT.glob("benchmarks/*.py")]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        bad = sorted({hex(ord(c)) for c in text if ord(c) < 32 and c not in "\n\t"})
        assert not bad, f"{path.relative_to(ROOT)}: control characters {bad}"


# -- formulas ---------------------------------------------------------------------

# Pages with formulas; each must show typeset math.
MATH_PAGES = {f"tutorial/{name}.md" for name in EXAMPLES} | {
    "index.md", "design.md", "model-selection.md", "priors.md", "cli.md", "migrating-from-sklearn.md",
    "numerics.md", "performance.md", "scaling.md", "models.md", "missing.md",
}
MATHJAX = "https://unpkg.com/mathjax@3/es5/tex-mml-chtml.js"


def extension_options(config, name):
    """The options mkdocs.yml gives a Markdown extension, or None when it is not listed."""
    for entry in config["markdown_extensions"]:
        if entry == name:
            return {}
        if isinstance(entry, dict) and name in entry:
            return entry[name] or {}
    return None


class ProseText(HTMLParser):
    """The text of a page's content, leaving out code, scripts and typeset formulas."""

    SKIPPED = {"code", "pre", "script", "style"}

    def __init__(self):
        super().__init__()
        self.in_content, self.skipping, self.depth, self.text = 0, None, 0, []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "article":
            self.in_content += 1
        if self.skipping is None and (tag in self.SKIPPED or "arithmatex" in classes):
            self.skipping, self.depth = tag, 0
        if tag == self.skipping:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == self.skipping:
            self.depth -= 1
            if self.depth == 0:
                self.skipping = None
        if tag == "article":
            self.in_content -= 1

    def handle_data(self, data):
        if self.in_content and self.skipping is None:
            self.text.append(data)


def test_mathjax_is_configured(site, config):
    assert extension_options(config, "pymdownx.arithmatex") == {"generic": True}
    assert config["extra_javascript"] == ["javascripts/mathjax.js", MATHJAX]
    assert (ROOT / "docs" / "javascripts" / "mathjax.js").is_file()
    assert (site / "javascripts" / "mathjax.js").is_file()


@pytest.mark.parametrize("page", NAV_PAGES)
def test_formulas_are_typeset(site, page):
    html_text = built_page(site, page).read_text()
    # The configuration, then MathJax itself.
    scripts = re.findall(r'<script src="([^"]+)"', html_text)
    local = [s for s in scripts if s.endswith("javascripts/mathjax.js")]
    assert len(local) == 1 and MATHJAX in scripts and scripts.index(local[0]) < scripts.index(MATHJAX), scripts
    assert (built_page(site, page).parent / local[0]).resolve() == (site / "javascripts" / "mathjax.js").resolve()
    if page in MATH_PAGES:
        assert 'class="arithmatex"' in html_text, f"{page} shows no typeset formula"
    # A $ left in the prose is a formula arithmatex did not take (a space inside the
    # delimiters, a table cell split at a |, ...): it would show as plain text.
    prose = ProseText()
    prose.feed(html_text)
    assert prose.text, f"{page}: no <article> content found"
    stray = [line for line in "".join(prose.text).splitlines() if "$" in line]
    assert not stray, f"{page}: text with a $ that was not typeset:\n" + "\n".join(stray)


# -- code blocks in the page sources ----------------------------------------------

DOCS = ROOT / "docs"
SOURCE_PAGES = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
MAX_CODE_LINE = 88  # characters; longer lines scroll sideways on the site
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# Letters and operators of formulas, and the relations that make a line an equation.
MATH_SYMBOL = re.compile(r"[\u0391-\u03a9\u03b1-\u03c9∑∏∫∂∇⟨⟩≤≥≈∝√‖∈∞−]")
RELATION = re.compile(r"[=≤≥≈∝←~]")


def closes(match, fence: str) -> bool:
    """Whether a line matching FENCE closes the fenced block opened by ``fence``."""
    return bool(match) and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence) and not match["info"].strip()


def fenced_blocks(text: str) -> list[tuple[str, list[tuple[int, str]]]]:
    """Every fenced code block of a page: its language ("" if none) and its (line number, line)s."""
    blocks, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match["fence"]
                info = match["info"].strip().lstrip("{").lstrip(".")
                blocks.append((info.split()[0].rstrip("}") if info else "", []))
        elif closes(match, fence):
            fence = None
        else:
            blocks[-1][1].append((number, line))
    return blocks


def indented_blocks(text: str) -> list[tuple[int, str]]:
    """Every indented code block of a page: the line number of its first line and its text.

    Python-Markdown decides what is an indented code block (list items nest by indentation
    too); the fenced blocks are replaced by a line of text first.
    """
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match["fence"]
            lines.append(match["indent"] + "fenced-block")
        elif fence is not None:
            if closes(match, fence):
                fence = None
        else:
            lines.append(line)
    rendered = markdown.markdown(
        "\n".join(lines), extensions=["tables", "admonition", "attr_list", "pymdownx.arithmatex"],
        extension_configs={"pymdownx.arithmatex": {"generic": True}},
    )
    blocks = []
    for code in re.findall(r"<pre><code>(.*?)</code></pre>", rendered, flags=re.S):
        code = html.unescape(code)
        first = code.splitlines()[0].strip()
        number = next(
            i for i, line in enumerate(text.splitlines(), 1) if line.startswith(("    ", "\t")) and line.strip() == first
        )
        blocks.append((number, code))
    return blocks


def looks_like_a_formula(lines: list[str]) -> bool:
    """A line with a letter or operator of mathematics in an equation or inequality."""
    return any(MATH_SYMBOL.search(line) and RELATION.search(line) for line in lines)


@pytest.mark.parametrize("page", SOURCE_PAGES)
def test_code_blocks_fit_the_page(page):
    long = [
        f"{page}:{number}: {len(line)} characters"
        for _, lines in fenced_blocks((DOCS / page).read_text())
        for number, line in lines
        if len(line) > MAX_CODE_LINE
    ]
    assert not long, f"code lines longer than {MAX_CODE_LINE} characters:\n" + "\n".join(long)


def formulas_in_code_blocks(page: str, text: str) -> list[str]:
    """What in a page's source is a formula in a code block, or a code block that cannot say what it holds.

    An indented code block has no language: a formula in one belongs in ``$$ ... $$``, code
    in a fenced block with its language. A fenced block without a language (or ``text``)
    is a formula when a line has a letter or operator of mathematics and a relation, unless
    it is a shell session (a line starts with ``$ ``) or, on a tutorial page, the example's
    output, which the tutorial tests check line by line against what the example prints.
    """
    problems = []
    for number, code in indented_blocks(text):
        what = "a formula in an indented code block" if looks_like_a_formula(code.splitlines()) else (
            "an indented code block (it has no language: put code in a fenced block with its language)"
        )
        problems.append(f"{page}:{number}: {what}:\n{code.rstrip()}")
    for language, lines in fenced_blocks(text):
        contents = [line for _, line in lines]
        if not lines or language not in ("", "text") or any(line.startswith("$ ") for line in contents):
            continue
        if language == "" and page.startswith("tutorial/"):
            continue
        if looks_like_a_formula(contents):
            problems.append(f"{page}:{lines[0][0]}: a formula in a fenced code block:\n" + "\n".join(contents))
    return problems


def test_the_formula_check_finds_formulas():
    text = "\n".join([
        "Text, then a formula as code:",
        "",
        "    p(x) = Σₖ πₖ p(x | θₖ)",
        "",
        "- a list item with a continued paragraph",
        "",
        "    indented as a list item's paragraph",
        "",
        "```",
        "ℓ(θ_new) ≥ ℓ(θ_old)",
        "```",
        "",
        "```text",
        "E[T(x)] = ∇A(η)",
        "```",
        "",
        "```python",
        "r = resp / resp.sum()  # rₙₖ = πₖ p(xₙ | θₖ) / p(xₙ)",
        "```",
        "",
        "```",
        "$ mixtures info model.mixture",
        "weight π = 0.3",
        "```",
        "",
        "```",
        "pip install jax-mixtures  # 10⁷ × 8, K = 32",
        "```",
        "",
        "$$",
        "\\ell(\\theta) = \\sum_n \\log p(x_n \\mid \\theta)",
        "$$",
    ])
    problems = formulas_in_code_blocks("page.md", text)
    assert [p.split(":")[1] for p in problems] == ["3", "10", "14"], problems
    assert "a formula in an indented code block" in problems[0]
    assert len(formulas_in_code_blocks("tutorial/page.md", text)) == 2  # the bare fence is the example's output
    assert [number for _, lines in fenced_blocks(text) for number, line in lines if len(line) > 20] == [18, 22, 27]


@pytest.mark.parametrize("page", SOURCE_PAGES)
def test_formulas_are_not_code_blocks(page):
    problems = formulas_in_code_blocks(page, (DOCS / page).read_text())
    assert not problems, "\n".join(problems)


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


# -- the pages' Python code ----------------------------------------------------------
#
# Every ```python block of README.md and of the pages runs: a page's blocks, in order, as one
# script in a fresh process, in a temporary directory holding the files the blocks read.
# A block that cannot run here says why in an HTML comment on the line above its fence,
# ``<!-- not run: <reason> -->``. docs/custom-family.md is run by tests/test_cli.py.

SKIP = re.compile(r"^<!--\s*not run:(?P<reason>.*?)-->$")
RUN_ELSEWHERE = {"custom-family.md": "tests/test_cli.py::test_custom_family_page_runs"}


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """A page's ```python blocks: (line number of the fence, code, the reason it is not run or None).

    The reason is that of a ``<!-- not run: ... -->`` comment on the nearest non-blank line
    above the fence; "" for such a comment without one.
    """
    source = text.splitlines()
    found = []
    for language, lines in fenced_blocks(text):
        if language != "python" or not lines:
            continue
        fence = lines[0][0] - 1  # 1-based number of the opening fence
        above = next((line.strip() for line in reversed(source[: fence - 1]) if line.strip()), "")
        skip = SKIP.match(above)
        code = textwrap.dedent("\n".join(line for _, line in lines))  # a fence in a list is indented
        found.append((fence, code, skip["reason"].strip() if skip else None))
    return found


def run_pages() -> list[str]:
    """README.md and every page of docs/ with a ```python block, as paths relative to the root."""
    pages = ["README.md"] + [f"docs/{page}" for page in SOURCE_PAGES if page not in RUN_ELSEWHERE]
    return [page for page in pages if python_blocks((ROOT / page).read_text())]


def write_data_npy(directory: Path):
    """data.npy: 4000 float32 rows of eight well-separated clusters in two dimensions."""
    rng = np.random.default_rng(0)
    centres = 10.0 * np.stack(np.unravel_index(np.arange(8), (2, 4)), axis=1)
    x = centres[rng.integers(8, size=4000)] + rng.normal(size=(4000, 2))
    np.save(directory / "data.npy", x.astype(np.float32))


def from_example(name: str) -> str:
    """Code that runs examples/<name>.py's definitions into ``example``, a dict."""
    return f"import runpy\nexample = runpy.run_path({str(ROOT / 'examples' / f'{name}.py')!r})\n"


# What each page's blocks assume: JAX's x64 mode (as the page implies), the files written
# into the working directory first, and the names they take from the page's prose or an
# earlier page, with the code that defines them (the tutorials' data comes from their
# examples). Only those names reach the blocks, so an import a block forgets fails.
PAGE_SETUP = {
    "README.md": (False, [write_data_npy], "", ()),
    "docs/index.md": (True, [], "", ()),
    "docs/migrating-from-sklearn.md": (False, [], "", ()),
    "docs/model-selection.md": (True, [], (
        "import jax\nimport mixtures as mx\n"
        "x = mx.datasets.load_old_faithful()\n"
    ), ("jax", "mx", "x")),
    "docs/models.md": (False, [], "", ()),
    "docs/missing.md": (False, [], "", ()),
    "docs/variational.md": (False, [], "", ()),
    "docs/priors.md": (False, [], "", ()),
    "docs/scaling.md": (False, [write_data_npy], (
        "import numpy as np\nimport mixtures as mx\n"
        "x = np.load('data.npy')\n"
        "family = mx.Gaussian('full')\n"
        "params = family.make_params(x[:8], np.stack([np.eye(2)] * 8))  # eight rows as centres\n"
        "start = mx.Mixture(np.full(8, 1 / 8), params, family)\n"
        "stream = np.split(x, 4)  # four batches of 1000 rows\n"
    ), ("x", "start", "stream")),
    "docs/cli.md": (False, [], "", ()),
    "docs/performance.md": (False, [], "", ()),
    "docs/save-load.md": (False, [], (
        "import jax\nimport mixtures as mx\n"
        "result = mx.fit(mx.datasets.load_old_faithful(), mx.Gaussian('full'), 2, key=jax.random.key(0))\n"
    ), ("result",)),
    "docs/tutorial/01-mixture-density.md": (True, [], "", ()),
    "docs/tutorial/03-responsibilities.md": (True, [], from_example("tutorial_03_responsibilities") + (
        "import jax\nimport numpy as np\nimport mixtures as mx\n"
        "x = np.asarray(example['true_mixture']().sample(400, key=jax.random.key(3))[0])\n"
    ), ("jax", "mx", "x")),
    "docs/tutorial/04-em-steps.md": (True, [], (
        "import numpy as np\nimport mixtures as mx\n"
        "x = mx.datasets.load_old_faithful()\n"
        "K = 2\n"
        "means = np.array([[3.0, 65.0], [3.6, 72.0]])\n"
        "covariances = np.stack([np.cov(x.T, bias=True)] * K)\n"
    ), ("np", "mx", "x", "K", "means", "covariances")),
    "docs/tutorial/05-convergence.md": (True, [], (
        "import jax\nimport mixtures as mx\nfrom mixtures import plot\n"
        "x = mx.datasets.load_old_faithful()\n"
    ), ("jax", "mx", "plot", "x")),
    "docs/tutorial/07-kmeans.md": (True, [], from_example("tutorial_07_kmeans") + (
        "import jax\nimport numpy as np\nimport mixtures as mx\n"
        "x = np.asarray(example['thin_clusters']().sample(400, key=jax.random.key(7))[0])\n"
        "centres = x[np.random.default_rng(0).choice(400, size=2, replace=False)]\n"
    ), ("np", "mx", "x", "centres")),
}


def page_script(page: str) -> tuple[str, list[str]]:
    """The script that runs ``page``'s blocks, and those blocks."""
    x64, _, setup, names = PAGE_SETUP[page]
    blocks = [(fence, code) for fence, code, reason in python_blocks((ROOT / page).read_text()) if reason is None]
    lines = ["import jax", f"jax.config.update('jax_enable_x64', {x64})", "del jax"]
    if names:
        lines += ["def _page_setup():", textwrap.indent(setup, "    "),
                  "    scope = locals()", f"    return {{name: scope[name] for name in {names!r}}}",
                  "globals().update(_page_setup())", "del _page_setup"]
    lines += [f"# {page}:{fence}\n{code}" for fence, code in blocks]
    return "\n".join(lines) + "\n", [code for _, code in blocks]


def test_every_page_with_python_code_is_run():
    assert set(run_pages()) == set(PAGE_SETUP)
    for page in [*run_pages(), *(f"docs/{p}" for p in RUN_ELSEWHERE)]:
        for fence, _, reason in python_blocks((ROOT / page).read_text()):
            assert reason is None or reason, f"{page}:{fence}: a block not run must say why"


def test_python_blocks_are_found_with_their_skips():
    text = "\n".join([
        "```python", "a = 1", "```", "",
        "<!-- not run: needs several processes -->", "", "```python", "b = 2", "```",
        "<!-- not run: -->", "```python", "c = 3", "```",
        "```text", "d = 4", "```", "```python", "```", "- item", "",
        "  ```python", "  if e:", "      f = 5", "  ```",
    ])
    assert python_blocks(text) == [(1, "a = 1", None), (7, "b = 2", "needs several processes"), (11, "c = 3", ""),
                                  (21, "if e:\n    f = 5", None)]


def printed_claims(code: str) -> list[str]:
    """The comments of a page's ``print(...)  # ...`` lines, which say what each prints."""
    return re.findall(r"^[ \t]*print\(.*\)[ \t]*#(.*)$", code, flags=re.M)


# Pages whose blocks take more than 20 s of CPU time (compilation, mostly).
SLOW_PAGES = {"README.md", "docs/migrating-from-sklearn.md", "docs/model-selection.md"}


@pytest.mark.parametrize(
    "page", [pytest.param(page, marks=pytest.mark.slow) if page in SLOW_PAGES else page for page in PAGE_SETUP]
)
def test_page_python_code_runs(page, tmp_path):
    for write in PAGE_SETUP[page][1]:
        write(tmp_path)
    script, blocks = page_script(page)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, f"{page}:\n{out.stderr}"
    # Each print(...) prints a line its comment names ("False, JAX's default"); nothing else is printed.
    printed = out.stdout.splitlines()
    claims = printed_claims("\n".join(blocks))
    assert len(printed) == len(claims), out.stdout
    for line, claim in zip(printed, claims):
        assert re.search(rf"(?<!\w){re.escape(line.strip())}(?!\w)", claim), f"prints {line!r}; the page says {claim!r}"
