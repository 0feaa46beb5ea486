"""Independent: different families on disjoint column groups of one row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.core.family import Family
from mixtures._src.families.independent import Independent
from mixtures._src.families.poisson import Poisson, PoissonParams
from mixtures._src.families.von_mises_fisher import VonMisesFisher
from tests.helpers import blobs

DIAG = mx.Gaussian("diag")
SPLIT = Independent(((DIAG, (0, 1)), (DIAG, (2,))))
X3, _ = blobs(0, 300, means=[[0, 0, 0], [4, 4, 0], [0, 4, 4]], scales=[1.0, 0.7, 1.3])


def _split_params(p):
    """Gaussian("diag") parameters on 3 columns as SPLIT's (columns (0, 1), then (2,))."""
    return (
        mx.GaussianParams(p.means[:, :2], p.precisions_cholesky[:, :2]),
        mx.GaussianParams(p.means[:, 2:], p.precisions_cholesky[:, 2:]),
    )


def test_diag_groups_equal_one_diag_gaussian():
    rng = np.random.default_rng(1)
    start = DIAG.make_params(X3[rng.choice(300, 3, replace=False)], rng.uniform(0.5, 2.0, (3, 3)))
    weights = np.array([0.2, 0.3, 0.5])
    whole = mx.Mixture(weights, start, DIAG)
    split = mx.Mixture(weights, _split_params(start), SPLIT)
    np.testing.assert_allclose(split.log_prob(X3), whole.log_prob(X3), rtol=1e-12)
    a = mx.fit(X3, DIAG, 3, key=None, init=whole, tol=0.0, max_iter=25)
    b = mx.fit(X3, SPLIT, 3, key=None, init=split, tol=0.0, max_iter=25)
    jax.tree.map(
        lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12),
        (_split_params(a.mixture.params), a.mixture.weights, a.history, a.log_likelihood),
        (b.mixture.params, b.mixture.weights, b.history, b.log_likelihood),
    )
    # The random start places each group's components at the same rows, scaled per column.
    np.testing.assert_allclose(
        jnp.concatenate([p.precisions_cholesky for p in SPLIT.init_params(X3[:3], X3)], axis=1),
        DIAG.init_params(X3[:3], X3).precisions_cholesky,
        rtol=1e-14,
    )


MIXED = Independent(((DIAG, (0, 2)), (Poisson(), (1,))))
GAUSS_MEANS = np.array([[0.0, 0.0], [3.0, -3.0]])
RATES = np.array([2.0, 12.0])
COUNTS = np.array([900, 1100])


@pytest.fixture(scope="module")
def mixed_data():
    rng = np.random.default_rng(2)
    z = np.repeat([0, 1], COUNTS)
    gauss = GAUSS_MEANS[z] + rng.standard_normal((z.size, 2))
    x = np.stack([gauss[:, 0], rng.poisson(RATES[z]).astype(float), gauss[:, 1]], axis=1)
    return x, z


def test_mixed_gaussian_poisson_recovery(mixed_data):
    x, _ = mixed_data
    result = mx.fit(x, MIXED, 2, key=jax.random.key(0))
    gauss, poisson = result.mixture.params
    assert isinstance(poisson, PoissonParams)
    k = np.argsort(np.asarray(poisson.rates[:, 0]))  # match components by rate
    n = COUNTS.sum()
    for j in range(2):
        se_mean = 1.0 / np.sqrt(COUNTS[j])
        np.testing.assert_allclose(np.asarray(gauss.means[k[j]]), GAUSS_MEANS[j], atol=5 * se_mean)
        np.testing.assert_allclose(np.asarray(gauss.covariances[k[j]]), 1.0, atol=5 * np.sqrt(2.0) * se_mean)
        np.testing.assert_allclose(float(poisson.rates[k[j], 0]), RATES[j], atol=5 * np.sqrt(RATES[j] / COUNTS[j]))
        p = COUNTS[j] / n
        assert abs(float(result.mixture.weights[k[j]]) - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert MIXED.n_free_parameters(2, 3) == DIAG.n_free_parameters(2, 2) + Poisson().n_free_parameters(2, 1) == 10


@jax.jit
def _contract_values(params, x, key):
    batched = MIXED.log_prob_components(params, x)
    one_by_one = Family.log_prob_components(MIXED, params, x)
    draw = MIXED.sample(jax.tree.map(lambda a: a[1], params), key)
    return batched, one_by_one, draw


def test_batched_density_and_sample_follow_the_columns(mixed_data):
    x, _ = mixed_data
    params = (DIAG.make_params([[0.0, 0.0], [-50.0, 50.0]], np.ones((2, 2))), PoissonParams(jnp.array([[1.0], [7.0]])))
    batched, one_by_one, draw = _contract_values(params, x[:40], jax.random.key(0))
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-13)
    assert batched.shape == (40, 2)
    draw = np.asarray(draw)  # column 0 near −50, column 2 near 50, column 1 a count
    assert abs(draw[0] + 50) < 6 and abs(draw[2] - 50) < 6 and draw[1] == np.round(draw[1]) >= 0
    assert MIXED.n_features(params) == 3


def test_bad_column_is_named_in_the_full_matrix(mixed_data):
    x = mixed_data[0][:50].copy()
    x[4, 1] = -1.0
    with pytest.raises(ValueError, match=r"Poisson.*which models column 1 of `x`, rejects row 4: column 1 of `x`"):
        mx.fit(x, MIXED, 2, key=jax.random.key(0))
    directions = np.tile([[0.6, 0.8]], (6, 1))
    directions[3] = 0.0
    fam = Independent(((VonMisesFisher(), (1, 2)), (DIAG, (0,))))
    with pytest.raises(ValueError, match=r"models columns \(1, 2\) of `x`, rejects row 3: row 3 of `x` has norm 0"):
        fam.check_data(np.concatenate([np.ones((6, 1)), directions], axis=1))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        MIXED.check_data(x[:, :2])


@pytest.mark.parametrize(
    "components, error, match",
    [
        ((), ValueError, "at least one"),
        (((DIAG, (0, 1)), (DIAG, (1,))), ValueError, r"columns \[1\] appear more than once"),
        (((DIAG, (0,)), (DIAG, (2,))), ValueError, r"leave out \[1\]"),
        (((DIAG, ()),), ValueError, "at least one column"),
        ((("diag", (0,)),), TypeError, "mixtures.Family"),
        (((DIAG, 0),), TypeError, "tuple of column indices"),
        (((DIAG, (0.0,)),), TypeError, "integer column indices"),
        ((DIAG,), TypeError, r"components\[0\]"),
        (DIAG, TypeError, "tuple of"),
        (((mx.StudentT(), (0,)),), TypeError, "GradientFamily"),
    ],
)
def test_invalid_components_are_rejected(components, error, match):
    with pytest.raises(error, match=match):
        Independent(components)


def test_static_and_hashable():
    same = Independent([[DIAG, [0, 1]], (DIAG, (2,))])  # lists are stored as tuples
    assert same == SPLIT and hash(same) == hash(SPLIT)
    assert same.components == ((DIAG, (0, 1)), (DIAG, (2,)))
