"""Information criteria (BIC, AIC, ICL) and model selection over K and families."""

import jax
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.fitting import selection
from mixtures._src.fitting.selection import select
from tests.helpers import blobs, dense_covariances, responsibilities

COVARIANCES = ["full", "diag", "spherical", "tied"]
THREE = [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]]


def padded(mixture: mx.Mixture, extra_means) -> mx.Mixture:
    """The mixture with len(extra_means) more components of weight exactly zero."""
    family, p = mixture.family, mixture.params
    extra = len(extra_means)
    means = np.concatenate([np.asarray(p.means), extra_means])
    covs = np.asarray(p.covariances)  # (K, D, D) for tied: one copy per component
    if family.covariance == "tied":
        covs = covs[0]
    else:
        covs = np.concatenate([covs, np.repeat(covs[:1], extra, axis=0)])
    weights = np.concatenate([np.asarray(mixture.weights), np.zeros(extra)])
    return mx.Mixture(weights, family.make_params(means, covs), family)


@pytest.mark.parametrize("covariance", ["full", "tied"])
def test_padded_fit_equals_unpadded_fit(covariance):
    x, _ = blobs(0, 150, THREE, [1.0, 0.8, 1.2])
    family = mx.Gaussian(covariance)
    covs = np.eye(2) * 2.0 if covariance == "tied" else np.stack([np.eye(2) * s for s in (2.0, 1.5, 3.0)])
    start = mx.Mixture(np.array([0.2, 0.3, 0.5]), family.make_params(x[[0, 1, 2]], covs), family)
    start5 = padded(start, x[[3, 4]])
    ours = mx.fit(x, family, 3, key=None, init=start, max_iter=15, tol=0.0)
    pad = mx.fit(x, family, 5, key=None, init=start5, max_iter=15, tol=0.0)

    np.testing.assert_allclose(pad.history, ours.history, rtol=1e-10)
    np.testing.assert_allclose(pad.log_likelihood, ours.log_likelihood, rtol=1e-10)
    assert int(pad.n_iter) == int(ours.n_iter) == 15
    np.testing.assert_allclose(pad.mixture.weights[:3], ours.mixture.weights, rtol=1e-10)
    np.testing.assert_array_equal(pad.mixture.weights[3:], 0.0)  # switched off for good
    for a, b in zip(jax.tree.leaves(pad.mixture.params), jax.tree.leaves(ours.mixture.params)):
        np.testing.assert_allclose(a[:3], b, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(pad.mixture.params.means[3:], x[[3, 4]])  # untouched
    # The criteria count only the active components.
    assert pad.mixture.n_parameters == ours.mixture.n_parameters == family.n_free_parameters(3, 2) + 2
    np.testing.assert_allclose(pad.mixture.bic(x), ours.mixture.bic(x), rtol=1e-10)
    np.testing.assert_allclose(pad.mixture.icl(x), ours.mixture.icl(x), rtol=1e-10)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_criteria_match_sklearn_and_numpy(covariance):
    x, _ = blobs(1, 120, THREE, [1.0, 0.6, 1.5])
    gm = GaussianMixture(3, covariance_type=covariance, random_state=0).fit(x)
    family = mx.Gaussian(covariance)
    m = mx.Mixture(gm.weights_, family.make_params(gm.means_, gm.covariances_), family)
    assert m.n_parameters == gm._n_parameters()
    np.testing.assert_allclose(float(m.bic(x)), gm.bic(x), rtol=1e-8)
    np.testing.assert_allclose(float(m.aic(x)), gm.aic(x), rtol=1e-8)

    dense = dense_covariances(covariance, gm.covariances_, 3, 2)
    r = responsibilities(x, gm.weights_, gm.means_, dense)
    entropy = -np.sum(np.log(r.max(axis=1)))  # mclust's classification term
    assert entropy > 0
    np.testing.assert_allclose(float(m.icl(x)), gm.bic(x) + 2 * entropy, rtol=1e-8)

    if covariance != "full":
        return
    # Integer weights count as repeated rows, N = Σ w; blocks do not change the sums.
    w = np.random.default_rng(0).integers(0, 3, size=len(x))
    repeated = np.repeat(x, w, axis=0)
    for name in ("bic", "aic", "icl"):
        weighted = getattr(m, name)(x, sample_weight=w, chunk_size=17)
        np.testing.assert_allclose(float(weighted), float(getattr(m, name)(repeated)), rtol=1e-10)


@pytest.mark.slow
def test_select_picks_three_components_by_bic():
    x, _ = blobs(2, 300, THREE, [1.0, 0.8, 1.2])
    s = select(x, mx.Gaussian("full"), range(1, 6), key=jax.random.key(0), n_init=2)
    assert s.n_components == 3 and s.family == mx.Gaussian("full") and s.criterion == "bic"
    assert [row["n_components"] for row in s.table] == [1, 2, 3, 4, 5]
    assert s.best.mixture.n_components == 3 and s.best.all_log_likelihoods.shape == (2,)
    bics = [row["bic"] for row in s.table]
    assert int(np.argmin(bics)) == 2
    for row, result in zip(s.table, s.results):
        k = row["n_components"]
        assert result.mixture.n_components == k and result.mixture.params.means.shape == (k, 2)
        assert np.all(np.asarray(result.mixture.weights) > 0)
        np.testing.assert_allclose(np.sum(result.mixture.weights), 1.0, rtol=1e-12)
        assert row["n_parameters"] == 6 * k - 1  # K·(2 + 3) means and covariances + K − 1 weights
        assert row["n_iter"] == int(result.n_iter) and row["converged"] == bool(result.converged)
    # The table's criteria are those of the returned (sliced) mixture; one component has no entropy.
    m = s.best.mixture
    np.testing.assert_allclose(s.table[2]["bic"], float(m.bic(x)), rtol=1e-10)
    np.testing.assert_allclose(s.table[2]["icl"], float(m.icl(x)), rtol=1e-10)
    np.testing.assert_allclose(s.table[2]["log_likelihood"], float(np.mean(m.log_prob(x))), rtol=1e-10)
    assert s.table[0]["icl"] == s.table[0]["bic"]


@pytest.mark.slow
def test_select_over_families_returns_the_right_family_in_one_compiled_call_each(monkeypatch):
    # Three elongated, correlated clusters: full covariances beat spherical ones at any K tried.
    rng = np.random.default_rng(3)
    factor = np.array([[2.0, 0.0], [1.8, 0.3]])
    z = rng.integers(0, 3, size=241)
    x = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])[z] + rng.standard_normal((241, 2)) @ factor.T
    calls = []

    def counting_start(*args, **kwargs):
        calls.append(args[0])
        return fitting.start_restart(*args, **kwargs)

    monkeypatch.setattr(selection, "start_restart", counting_start)
    selection._start_candidates.clear_cache()
    families = [mx.Gaussian("spherical"), mx.Gaussian("full")]
    s = select(x, families, [4, 2, 3], key=jax.random.key(1), criterion="icl")
    assert calls == families  # traced once per family: every K and restart in one program
    assert s.family == mx.Gaussian("full") and s.n_components == 3 and s.criterion == "icl"
    assert [(row["family"].covariance, row["n_components"]) for row in s.table] == [
        ("spherical", 2), ("spherical", 3), ("spherical", 4), ("full", 2), ("full", 3), ("full", 4)
    ]
    assert len(s.results) == 6
    for row in s.table:
        assert row["icl"] >= row["bic"] and np.isfinite(row["aic"])


X = blobs(4, 20, THREE, [1.0, 1.0, 1.0])[0]
G = mx.Gaussian("diag")

# (case id, keyword overrides of select, exception type, words the message must contain)
SELECT_CASES = [
    ("k_int", dict(n_components=3), TypeError, ["`n_components`", "iterable", "[K]"]),
    ("k_empty", dict(n_components=[]), ValueError, ["`n_components`", "at least one"]),
    ("k_zero", dict(n_components=[0, 2]), ValueError, ["`n_components[0]`", "positive"]),
    ("k_float", dict(n_components=[1, 2.5]), TypeError, ["`n_components[1]`", "integer"]),
    ("k_above_n", dict(n_components=[2, 21]), ValueError, ["`n_components[1]`", "at most", "20"]),
    ("k_repeated", dict(n_components=[2, 3, 2]), ValueError, ["`n_components`", "repeat", "[2]"]),
    ("k_above_positive_weights", dict(n_components=[3], sample_weight=np.r_[np.ones(2), np.zeros(18)]),
     ValueError, ["`n_components[0]`", "positive `sample_weight`", "(2)"]),
    ("criterion_unknown", dict(criterion="BIC"), ValueError, ["`criterion`", "'bic'", "'BIC'"]),
    ("criterion_type", dict(criterion=None), TypeError, ["`criterion`"]),
    ("family_string", dict(family="diag"), TypeError, ["`family`", "mx.Gaussian()"]),
    ("family_empty", dict(family=[]), ValueError, ["`family`", "at least one"]),
    ("family_item", dict(family=[G, "full"]), TypeError, ["`family[1]`"]),
    ("family_twice", dict(family=[G, mx.Gaussian("diag")]), ValueError, ["`family`", "twice"]),
    ("n_init", dict(n_init=0), ValueError, ["`n_init`", "positive"]),
    ("max_iter", dict(max_iter=1.5), TypeError, ["`max_iter`"]),
    ("tol", dict(tol=-1.0), ValueError, ["`tol`", "non-negative"]),
    ("key", dict(key=0), TypeError, ["`key`", "jax.random.key"]),
    ("init", dict(init="kmeans+++"), ValueError, ["`init`", "kmeans+++"]),
    ("init_type", dict(init=None), TypeError, ["`init`", "warm start"]),
    ("weights_shape", dict(sample_weight=np.ones(3)), ValueError, ["`sample_weight`", "(20,)"]),
    ("chunk_size", dict(chunk_size=0), ValueError, ["`chunk_size`"]),
    ("x_nan", dict(x=np.where(np.eye(20, 2) > 0, np.nan, X)), ValueError, ["`x`", "finite"]),
    ("x_1d", dict(x=X[:, 0]), ValueError, ["`x`", "2-D"]),
]


@pytest.mark.parametrize("case", SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
def test_select_rejects_bad_arguments(case, monkeypatch):
    _, overrides, error, words = case
    monkeypatch.setattr(selection, "_start_candidates", None)  # nothing may be compiled or run
    kwargs = dict(x=X, family=G, n_components=range(1, 4), key=jax.random.key(0)) | overrides
    with pytest.raises(error) as info:
        select(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_criteria_reject_bad_arguments():
    m = mx.Mixture(np.array([0.5, 0.5]), G.make_params(np.zeros((2, 2)), np.ones((2, 2))), G)
    with pytest.raises(ValueError, match="`x` must have 2 features"):
        m.bic(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`sample_weight` must be finite and non-negative"):
        m.aic(np.zeros((2, 2)), sample_weight=np.array([1.0, -1.0]))
    with pytest.raises(TypeError, match="`n_parameters`.*concrete"):
        jax.jit(lambda w: mx.Mixture(w, m.params, G).n_parameters)(m.weights)
