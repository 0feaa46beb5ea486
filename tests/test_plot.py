"""mixtures.plot against NumPy/SciPy references: ellipse geometry, contour levels, histograms, colours, histories."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import expon, norm, poisson

import mixtures as mx
from mixtures import plot
from tests.helpers import dense_covariances, mixture_log_prob, responsibilities

WEIGHTS = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[0.0, 1.0, -2.0], [4.0, -1.0, 3.0], [-3.0, 2.0, 5.0]])
FULL = np.array(
    [
        [[2.0, 0.6, -0.9], [0.6, 1.0, 0.2], [-0.9, 0.2, 1.5]],
        [[1.0, -0.3, 0.4], [-0.3, 0.5, 0.0], [0.4, 0.0, 3.0]],
        [[0.7, 0.1, 0.1], [0.1, 2.5, -0.5], [0.1, -0.5, 0.9]],
    ]
)
COVARIANCES = {
    "full": FULL,
    "tied": FULL[0],
    "diag": np.array([[1.0, 2.0, 0.5], [3.0, 0.4, 1.0], [0.2, 0.2, 4.0]]),
    "spherical": np.array([0.5, 2.0, 1.5]),
    "identity": None,
}


def gaussian_mixture(covariance):
    family = mx.Gaussian(covariance)
    return mx.Mixture(WEIGHTS, family.make_params(MEANS, COVARIANCES[covariance]), family)


def reference_covariances(covariance):
    if covariance == "identity":
        return np.broadcast_to(np.eye(3), (3, 3, 3))
    return dense_covariances(covariance, COVARIANCES[covariance], 3, 3)


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


@pytest.fixture(scope="module")
def faithful_fit():
    """One Old Faithful fit with 3 restarts and every restart's reports."""
    x = mx.datasets.load_old_faithful()
    reports = []
    result = mx.fit(
        x, mx.Gaussian("full"), 2, key=jax.random.key(3), n_init=3, tol=1e-6, init="random_from_data",
        callback=reports.append,
    )
    return x, result, reports


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical", "identity"])
def test_ellipses_are_the_eigendecomposition_of_the_marginal_covariance(covariance, ax):
    dims = (2, 0)
    plot.ellipses(gaussian_mixture(covariance), ax=ax, dims=dims, n_std=(1.0, 2.5), alpha=0.5)
    covs = reference_covariances(covariance)[:, [2, 0]][:, :, [2, 0]]
    assert len(ax.patches) == 6
    for patch, (k, s) in zip(ax.patches, [(k, s) for k in range(3) for s in (1.0, 2.5)]):
        values, vectors = np.linalg.eig(covs[k])
        major = np.argmax(values)
        np.testing.assert_allclose(patch.center, MEANS[k, [2, 0]], atol=1e-12)
        np.testing.assert_allclose(patch.width, 2 * s * np.sqrt(values.max()), rtol=1e-9)
        np.testing.assert_allclose(patch.height, 2 * s * np.sqrt(values.min()), rtol=1e-9)
        if not np.isclose(values[0], values[1]):  # a circle has no orientation
            expected = np.degrees(np.arctan2(vectors[1, major], vectors[0, major]))
            assert np.isclose((patch.angle - expected) % 180.0, 0.0, atol=1e-7) or np.isclose(
                (patch.angle - expected) % 180.0, 180.0, atol=1e-7
            )
        # The patch maps the unit circle to points at Mahalanobis distance s from the mean.
        t = np.linspace(0.0, 2 * np.pi, 37)
        outline = patch.get_patch_transform().transform(np.column_stack([np.cos(t), np.sin(t)]))
        diff = outline - MEANS[k, [2, 0]]
        maha = np.sqrt(np.einsum("ni,ij,nj->n", diff, np.linalg.inv(covs[k]), diff))
        np.testing.assert_allclose(maha, s, rtol=1e-9)
        # Fill transparency scales with the weight; the heaviest component gets `alpha`.
        assert np.isclose(patch.get_facecolor()[3], 0.5 * WEIGHTS[k] / WEIGHTS.max())


def test_ellipses_rejects_other_families_and_bad_dims(ax):
    poisson = mx.Mixture(np.array([1.0]), mx.Poisson().make_params(np.ones((1, 2))), mx.Poisson())
    with pytest.raises(ValueError, match="Gaussian"):
        plot.ellipses(poisson, ax=ax)
    m = gaussian_mixture("full")
    with pytest.raises(ValueError, match=r"`dims`.*0\.\.2"):
        plot.ellipses(m, ax=ax, dims=(0, 3))
    with pytest.raises(ValueError, match="two different columns"):
        plot.ellipses(m, ax=ax, dims=(1, 1))
    with pytest.raises(TypeError, match="`dims`"):
        plot.ellipses(m, ax=ax, dims=0)
    with pytest.raises(ValueError, match="`n_std`"):
        plot.ellipses(m, ax=ax, n_std=(1.0, -2.0))
    with pytest.raises(TypeError, match="`mixture`"):
        plot.ellipses("model", ax=ax)
    assert not ax.patches


def test_density_contours_are_levels_of_the_true_marginal_log_density(ax):
    m = gaussian_mixture("full")
    dims = (0, 2)
    plot.density(m, ax=ax, dims=dims, levels=6, depth=9.0, grid=150)
    contours = ax.collections[-1]
    covs = FULL[:, [0, 2]][:, :, [0, 2]]
    means = MEANS[:, [0, 2]]

    def reference(points):
        return mixture_log_prob(points, WEIGHTS, means, covs)

    # Default limits: every component's mean ± 3 standard deviations.
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    lo, hi = (means - 3 * sd).min(axis=0), (means + 3 * sd).max(axis=0)
    np.testing.assert_allclose(ax.get_xlim(), (lo[0], hi[0]), rtol=1e-12)
    np.testing.assert_allclose(ax.get_ylim(), (lo[1], hi[1]), rtol=1e-12)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    top = reference(np.column_stack([gx.ravel(), gy.ravel()])).max()
    np.testing.assert_allclose(contours.levels, top - 9.0 + 1.5 * np.arange(6), rtol=1e-9)
    # The drawn lines lie where the reference log-density equals their level.
    paths = contours.get_paths()
    assert len(paths) == 6
    for level, path in zip(contours.levels, paths):
        assert len(path.vertices) > 10
        np.testing.assert_allclose(reference(path.vertices), level, atol=0.02)


def test_density_limits_from_data_and_explicit_levels(ax):
    m = gaussian_mixture("diag")
    x = np.array([[-1.0, 0.0, 0.0], [3.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    plot.density(m, ax=ax, dims=(2, 0), x=x, levels=[-6.0, -4.0, -3.0], grid=60)
    np.testing.assert_allclose(ax.get_xlim(), (0.0 - 0.1, 2.0 + 0.1))
    np.testing.assert_allclose(ax.get_ylim(), (-1.0 - 0.2, 3.0 + 0.2))
    assert ax.collections[-1].levels.tolist() == [-6.0, -4.0, -3.0]


def test_density_of_a_per_column_family_is_its_two_column_marginal(ax):
    rates = np.array([[1.0, 0.5, 2.0], [0.25, 3.0, 1.0]])
    m = mx.Mixture(np.array([0.4, 0.6]), mx.Exponential().make_params(rates), mx.Exponential())
    plot.density(m, ax=ax, dims=(1, 0), levels=4, depth=6.0, grid=120)
    contours = ax.collections[-1]

    def reference(points):
        comp = [
            np.log(w) + expon(scale=1 / r[1]).logpdf(points[:, 0]) + expon(scale=1 / r[0]).logpdf(points[:, 1])
            for w, r in zip([0.4, 0.6], rates)
        ]
        return logsumexp(np.stack(comp, axis=1), axis=1)

    for level, path in zip(contours.levels, contours.get_paths()):
        inside = path.vertices[(path.vertices > 0.05).all(axis=1)]
        np.testing.assert_allclose(reference(inside), level, atol=0.05)


def test_density_rejects_what_it_cannot_draw(ax):
    counts = mx.Mixture(np.array([1.0]), mx.Poisson().make_params(np.ones((1, 2))), mx.Poisson())
    with pytest.raises(ValueError, match="discrete"):
        plot.density(counts, ax=ax, x=np.ones((3, 2)))
    m = gaussian_mixture("full")
    with pytest.raises(ValueError, match="`levels`"):
        plot.density(m, ax=ax, levels=[1.0, 0.0])
    with pytest.raises(ValueError, match="`grid`"):
        plot.density(m, ax=ax, grid=1)
    with pytest.raises(ValueError, match="`x` has 2 columns"):
        plot.density(m, ax=ax, x=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`x` must be finite"):
        plot.density(m, ax=ax, x=np.full((4, 3), np.nan))


def test_clusters_colours_every_point_by_its_hard_cluster(ax):
    rng = np.random.default_rng(0)
    m = gaussian_mixture("full")
    x = MEANS[rng.integers(0, 3, 200)] + rng.normal(size=(200, 3)) * 1.5
    plot.clusters(m, x, ax=ax, dims=(1, 2))
    points = ax.collections[-1]
    np.testing.assert_array_equal(points.get_offsets(), x[:, [1, 2]])
    # Hard clusters from SciPy densities, and the colour of each.
    comp = np.stack(
        [np.log(w) + mixture_log_prob(x, [1.0], [mu], [c]) for w, mu, c in zip(WEIGHTS, MEANS, FULL)], axis=1
    )
    expected = np.argmax(comp, axis=1)
    assert len(set(expected)) == 3
    colors = np.array(plot.component_colors(3))
    np.testing.assert_allclose(points.get_facecolors()[:, :3], colors[expected][:, :3])


def test_history_of_a_fit_and_of_every_restart(faithful_fit, ax, tmp_path):
    x, result, reports = faithful_fit
    plot.history(result, ax=ax)
    (line,) = ax.lines
    n = int(result.n_iter)
    history = np.asarray(result.history)
    assert np.isnan(history[n:]).all()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_array_equal(line.get_ydata(), history[:n])

    fig, axes = plt.subplots()
    plot.history(reports, ax=axes)
    assert [line.get_label() for line in axes.lines] == ["restart 0", "restart 1", "restart 2"]
    best = int(np.argmax(result.all_log_likelihoods))
    lengths = [len(line.get_xdata()) for line in axes.lines]
    assert lengths == np.asarray(result.all_n_iter).tolist()
    np.testing.assert_allclose(axes.lines[best].get_ydata(), history[:n], rtol=1e-12)
    fig.savefig(tmp_path / "history.png")
    plt.close(fig)
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    fig, axes = plt.subplots()
    table = np.array([[-3.0, -2.0, np.nan], [-4.0, -3.5, -3.4]])
    plot.history(table, ax=axes)
    assert [line.get_xydata().tolist() for line in axes.lines] == [
        [[1.0, -3.0], [2.0, -2.0]],
        [[1.0, -4.0], [2.0, -3.5], [3.0, -3.4]],
    ]
    plt.close(fig)
    with pytest.raises(TypeError, match="`result`"):
        plot.history("history", ax=ax)
    with pytest.raises(ValueError, match="finite"):
        plot.history(np.full((2, 3), np.nan), ax=ax)


def test_criterion_draws_the_table_and_circles_the_choice(ax):
    # A Selection as mx.select returns it (the CLI tests draw a real one); the plot reads only its table.
    family = mx.Gaussian("full")
    table = [
        {"family": family, "n_components": k, "log_likelihood": ll, "n_parameters": 6 * k - 1, "bic": b,
         "aic": a, "icl": b + 1.0, "converged": True, "n_iter": 10}
        for k, ll, b, a in [(1, -4.74, 2607.6, 2589.6), (2, -4.16, 2322.2, 2282.5), (3, -4.11, 2333.7, 2272.4)]
    ]
    selection = mx.Selection(None, 2, family, "bic", table, [])
    plot.criterion(selection, ax=ax, criterion="bic")
    line, marker = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(line.get_ydata(), [row["bic"] for row in selection.table])
    assert marker.get_xydata().tolist() == [[selection.n_components, selection.table[selection.n_components - 1]["bic"]]]

    fig, axes = plt.subplots()
    table = [
        {"family": f, "n_components": k, "aic": v}
        for f, values in [(mx.Gaussian("full"), [9.0, 4.0]), (mx.Gaussian("diag"), [8.0, 5.0])]
        for k, v in zip([1, 2], values)
    ]
    plot.criterion(table, ax=axes, criterion="aic")
    assert [line.get_label() for line in axes.lines[:2]] == ["Gaussian (full)", "Gaussian (diag)"]
    assert axes.lines[-1].get_xydata().tolist() == [[2.0, 4.0]]
    plt.close(fig)
    with pytest.raises(ValueError, match="row 0 lacks the keys"):
        plot.criterion(table, ax=ax, criterion="bic")
    with pytest.raises(ValueError, match="`criterion` must be one of"):
        plot.criterion(table, ax=ax, criterion="likelihood")
    with pytest.raises(TypeError, match="`selection_or_table`"):
        plot.criterion([], ax=ax)


def test_fit_summary_draws_contours_points_and_ellipses(faithful_fit, tmp_path):
    x, result, _ = faithful_fit
    fig, ax = plt.subplots()
    assert plot.fit_summary(result.mixture, x, ax=ax, grid=80) is ax
    assert len(ax.patches) == 4
    assert len(ax.collections) == 2  # the contour set and the points
    np.testing.assert_array_equal(ax.collections[1].get_offsets(), x)
    fig.savefig(tmp_path / "summary.png")
    plt.close(fig)
    assert (tmp_path / "summary.png").stat().st_size > 10_000


def test_importing_mixtures_does_not_import_matplotlib():
    code = "import sys, mixtures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_family_of_ones_own_is_drawn_from_what_it_says_of_itself(ax):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Waiting(mx.Exponential):
        def label(self):
            return "waiting times"

    rates = np.array([[1.0, 0.5, 2.0], [0.25, 3.0, 1.0]])
    family = Waiting()
    m = mx.Mixture(np.array([0.4, 0.6]), family.make_params(rates), family)
    x = np.random.default_rng(0).exponential(size=(20, 3))
    plot.fit_summary(m, x, ax=ax, dims=(2, 1), grid=30)
    assert ax.get_title() == "2-component mixture, waiting times"
    assert len(ax.collections) == 2 and not ax.patches  # contours (its marginal is known) and points, no ellipses
    fig, fresh = plt.subplots()
    plot.density(m, ax=fresh, dims=(1, 0), levels=3, grid=30)  # default limits from Family.extent
    plt.close(fig)
    means = 1.0 / rates[:, [1, 0]]  # an exponential's standard deviation is its mean
    np.testing.assert_allclose(fresh.get_xlim(), ((-2 * means[:, 0]).min(), (4 * means[:, 0]).max()))
    np.testing.assert_allclose(fresh.get_ylim(), ((-2 * means[:, 1]).min(), (4 * means[:, 1]).max()))


# -- one column: histogram --------------------------------------------------------


def column_of_three(n=1500, seed=0):
    """(N, 3) rows drawn from gaussian_mixture("full") and the 1-D mixture of its column 2 (its marginal)."""
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=WEIGHTS)
    x = MEANS[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(FULL)[z], rng.standard_normal((n, 3)))
    family = mx.Gaussian("full")
    one = mx.Mixture(WEIGHTS, family.make_params(MEANS[:, 2:], FULL[:, 2:, 2:]), family)
    return x, one


def shoelace_area(path):
    v = path.vertices
    return 0.5 * abs(np.dot(v[:-1, 0], v[1:, 1]) - np.dot(v[1:, 0], v[:-1, 1]))


def test_histogram_draws_the_mixture_density_and_its_weighted_components(ax):
    x, one = column_of_three()
    column = x[:, 2:]
    plot.histogram(one, column, ax=ax, bins=30)
    mixture_line, *components = ax.lines[-4:]
    t = mixture_line.get_xdata()
    density = mixture_line.get_ydata()
    # The curves span the histogram's bins, whose areas sum to one.
    edges = np.histogram_bin_edges(column[:, 0], bins=30)
    assert len(t) == 400 and t[0] == edges[0] and t[-1] == edges[-1]
    assert len(ax.patches) == 30
    assert np.isclose(sum(p.get_height() * p.get_width() for p in ax.patches), 1.0)
    # The line is exp(Mixture.log_prob) and SciPy's density, and integrates to the mass between its ends (≈ 1).
    np.testing.assert_allclose(density, np.exp(np.asarray(one.log_prob(t[:, None]))), rtol=1e-10)
    sd = np.sqrt(FULL[:, 2, 2])
    np.testing.assert_allclose(density, np.exp(mixture_log_prob(t[:, None], WEIGHTS, MEANS[:, 2:], FULL[:, 2:, 2:])))
    mass = np.sum(WEIGHTS * (norm.cdf(t[-1], MEANS[:, 2], sd) - norm.cdf(t[0], MEANS[:, 2], sd)))
    assert 0.995 < mass <= 1.0
    np.testing.assert_allclose(np.trapezoid(density, t), mass, rtol=1e-4)
    # The components are πₖ pₖ(t), in their colours, and add up to the mixture.
    for k, line in enumerate(components):
        np.testing.assert_array_equal(line.get_xdata(), t)
        np.testing.assert_allclose(line.get_ydata(), WEIGHTS[k] * norm.pdf(t, MEANS[k, 2], sd[k]), rtol=1e-9, atol=1e-300)
        assert line.get_color() == plot.component_colors(3)[k]
    np.testing.assert_allclose(sum(line.get_ydata() for line in components), density, rtol=1e-12)
    assert ax.get_ylabel() == "density"


def test_histogram_of_one_column_of_wider_data_is_the_marginal(ax):
    x, one = column_of_three()
    plot.histogram(gaussian_mixture("full"), x, ax=ax, dim=2)
    fig, alone = plt.subplots()
    plot.histogram(one, x[:, 2:], ax=alone)
    for wide, narrow in zip(ax.lines, alone.lines, strict=True):
        np.testing.assert_array_equal(wide.get_xdata(), narrow.get_xdata())
        np.testing.assert_allclose(wide.get_ydata(), narrow.get_ydata(), rtol=1e-12, atol=1e-300)
    assert [p.get_height() for p in ax.patches] == [p.get_height() for p in alone.patches]
    plt.close(fig)


def test_histogram_responsibilities_fill_the_unit_band_beneath(ax):
    x, one = column_of_three()
    fig = ax.get_figure()
    plot.histogram(one, x[:, 2:], ax=ax, responsibilities=True)
    panel = fig.axes[-1]
    assert panel is not ax and panel.get_shared_x_axes().joined(panel, ax)
    assert panel.get_position().y1 <= ax.get_position().y0  # beneath
    t = ax.lines[-1].get_xdata()
    bands = panel.collections
    assert len(bands) == 3
    # Band k lies between Σⱼ₍ⱼ₍ₖ₎ rⱼ and Σⱼ₍ⱼ≤ₖ₎ rⱼ: its area is ∫ rₖ, and the bands tile [t₀, t_G] × [0, 1].
    reference = responsibilities(t[:, None], WEIGHTS, MEANS[:, 2:], FULL[:, 2:, 2:])
    areas = [shoelace_area(band.get_paths()[0]) for band in bands]
    np.testing.assert_allclose(areas, np.trapezoid(reference, t, axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sum(areas), t[-1] - t[0], rtol=1e-12)
    for band, color in zip(bands, plot.component_colors(3)):
        np.testing.assert_allclose(band.get_facecolor()[0][:3], color[:3])
    assert panel.get_ylim() == (0.0, 1.0)


def test_histogram_of_counts_draws_poisson_masses_at_the_integers(ax):
    rates = np.array([[5.0, 1.5], [0.5, 9.0]])
    weights = np.array([0.35, 0.65])
    m = mx.Mixture(weights, mx.Poisson().make_params(rates), mx.Poisson())
    rng = np.random.default_rng(1)
    z = rng.choice(2, size=400, p=weights)
    x = rng.poisson(rates[z]).astype(np.float64)
    plot.histogram(m, x, ax=ax, dim=1, responsibilities=True)
    mixture_line, *components = ax.lines[-3:]
    counts = np.arange(x[:, 1].min(), x[:, 1].max() + 1)
    np.testing.assert_array_equal(mixture_line.get_xdata(), counts)
    pmf = weights[None, :] * poisson.pmf(counts[:, None], rates[:, 1][None, :])
    np.testing.assert_allclose(mixture_line.get_ydata(), pmf.sum(axis=1), rtol=1e-9)
    for k, line in enumerate(components):
        np.testing.assert_allclose(line.get_ydata(), pmf[:, k], rtol=1e-9, atol=1e-300)
    # One bar per integer, centred on it, of height its frequency.
    np.testing.assert_allclose([p.get_x() + p.get_width() / 2 for p in ax.patches], counts)
    assert {p.get_width() for p in ax.patches} == {1.0}
    frequencies = np.bincount(x[:, 1].astype(int))[int(counts[0]):] / len(x)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], frequencies)
    assert ax.get_ylabel() == "probability"
    bands = ax.get_figure().axes[-1].collections
    assert len(bands) == 2


def test_histogram_draws_every_built_in_family_with_a_one_column_marginal(ax):
    rng = np.random.default_rng(2)
    categorical = mx.Categorical((2, 3))
    cat = mx.Mixture(np.array([0.5, 0.5]), categorical.make_params([[0.5, 0.5, 0.2, 0.3, 0.5], [0.9, 0.1, 0.6, 0.3, 0.1]]), categorical)
    codes = np.column_stack([rng.integers(0, 2, 50), rng.integers(0, 3, 50)]).astype(np.float64)
    plot.histogram(cat, codes, ax=ax, dim=1)
    np.testing.assert_allclose(ax.lines[-3].get_ydata(), [0.4, 0.3, 0.3])
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), [0.3, 0.15, 0.05])

    g = mx.Gaussian("diag")
    mixed = mx.Independent(((g, (0,)), (mx.Poisson(), (1,))))
    params = (g.make_params(np.zeros((2, 1)), np.ones((2, 1))), mx.Poisson().make_params(np.array([[1.0], [4.0]])))
    m = mx.Mixture(np.array([0.5, 0.5]), params, mixed)
    data = np.column_stack([rng.normal(size=30), rng.poisson(2.0, 30)]).astype(np.float64)
    fig, counts = plt.subplots()
    plot.histogram(m, data, ax=counts, dim=1)
    t = counts.lines[-3].get_xdata()
    np.testing.assert_allclose(counts.lines[-3].get_ydata(), 0.5 * poisson.pmf(t, 1.0) + 0.5 * poisson.pmf(t, 4.0))
    plt.close(fig)

    # Bins reaching below an exponential's support: the curves stay within the data's range.
    waits = mx.Mixture(np.array([1.0]), mx.Exponential().make_params(np.array([[2.0]])), mx.Exponential())
    t_data = rng.exponential(0.5, size=(40, 1))
    fig, wide = plt.subplots()
    plot.histogram(waits, t_data, ax=wide, bins=np.linspace(-1.0, 4.0, 11))
    t = wide.lines[-1].get_xdata()
    assert t[0] == t_data.min() and t[-1] == t_data.max()
    np.testing.assert_allclose(wide.lines[-1].get_ydata(), expon(scale=0.5).pdf(t), rtol=1e-9)
    plt.close(fig)


def test_fit_summary_of_one_column_draws_the_histogram(tmp_path):
    x, one = column_of_three()
    fig, ax = plt.subplots()
    assert plot.fit_summary(one, x[:, 2:], ax=ax) is ax
    assert ax.get_title() == "3-component mixture, Gaussian (full)"
    assert len(ax.lines) == 4 and len(ax.patches) > 5
    assert len(fig.axes) == 2 and len(fig.axes[-1].collections) == 3  # the responsibilities beneath
    fig.savefig(tmp_path / "one.png")
    plt.close(fig)
    assert (tmp_path / "one.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_histogram_rejects_bad_arguments_before_drawing(ax):
    x, one = column_of_three(n=20)
    fig = ax.get_figure()
    counts = mx.Mixture(np.array([1.0]), mx.Poisson().make_params(np.ones((1, 1))), mx.Poisson())
    sphere = mx.Mixture(np.array([1.0]), mx.VonMisesFisher().make_params(np.array([[0.0, 1.0]]), np.ones(1)), mx.VonMisesFisher())
    cases = [
        (TypeError, "`mixture`", dict(mixture="model")),
        (TypeError, "`dim`", dict(dim=True)),
        (TypeError, "`dim`", dict(dim=0.0)),
        (ValueError, r"`dim` must be a column index in 0\.\.0 \(D = 1\)", dict(dim=1)),
        (ValueError, "`x` has 3 columns", dict(x=x)),
        (ValueError, "`x` must be finite", dict(x=np.full((4, 1), np.inf))),
        (ValueError, "`bins`", dict(bins="nonsense")),
        (ValueError, "`bins`", dict(bins=[3.0, 1.0, 2.0])),
        (TypeError, "`bins`", dict(bins=2.5)),
        (ValueError, "`grid`", dict(grid=1)),
        (ValueError, "`colors`", dict(colors=["red"])),
        (TypeError, "`responsibilities`", dict(responsibilities="yes")),
        (TypeError, "`ax`", dict(ax="axes")),
        (ValueError, "non-negative integer counts", dict(mixture=counts, x=np.array([[1.0], [2.5]]))),
        (ValueError, "`bins`.*'auto'", dict(mixture=counts, x=np.array([[1.0], [2.0]]), bins=5)),
        (ValueError, "one-column marginal.*sphere", dict(mixture=sphere, x=np.array([[0.0, 1.0]]))),
    ]
    for error, message, change in cases:
        arguments = dict(mixture=one, x=x[:, 2:], ax=ax) | change
        with pytest.raises(error, match=message):
            plot.histogram(arguments.pop("mixture"), arguments.pop("x"), **arguments)
    assert not ax.lines and not ax.patches and fig.axes == [ax]


def test_pairs_of_columns_of_one_column_data_point_at_the_histogram(ax):
    x, one = column_of_three(n=20)
    for draw in (plot.ellipses, plot.density):
        with pytest.raises(ValueError, match="D ≥ 2.*plot.histogram"):
            draw(one, ax=ax)
    with pytest.raises(ValueError, match="D ≥ 2.*plot.histogram"):
        plot.clusters(one, x[:, 2:], ax=ax)
