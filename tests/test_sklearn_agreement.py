"""From the same initial parameters, mx.fit reproduces scikit-learn's GaussianMixture (float64)."""

import warnings

import jax
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import mixtures as mx
from tests.helpers import synthetic_5x8

COVARIANCES = ["full", "diag", "spherical", "tied"]


def initial_parameters(x, k, covariance, seed):
    """Means at K random rows, unequal weights, covariances from the data's spread."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    means = x[rng.choice(n, size=k, replace=False)]
    weights = rng.uniform(0.5, 1.5, size=k)
    weights /= weights.sum()
    scale = np.cov(x.T) / k**2 + 0.01 * np.eye(d)
    covs = {
        "full": np.stack([scale * (1 + 0.1 * j) for j in range(k)]),
        "tied": scale,
        "diag": np.stack([np.diag(scale) * (1 + 0.1 * j) for j in range(k)]),
        "spherical": np.array([np.mean(np.diag(scale)) * (1 + 0.1 * j) for j in range(k)]),
    }[covariance]
    return weights, means, covs


def precisions(covariance, covs):
    if covariance in ("full", "tied"):
        return np.linalg.inv(covs)
    return 1.0 / covs


def sklearn_fit(x, k, covariance, weights, means, covs, max_iter, tol):
    gm = GaussianMixture(
        n_components=k, covariance_type=covariance, weights_init=weights, means_init=means,
        precisions_init=precisions(covariance, covs), max_iter=max_iter, tol=tol, reg_covar=1e-6,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    return gm


def our_fit(x, k, covariance, weights, means, covs, max_iter, tol, chunk_size=None):
    family = mx.Gaussian(covariance=covariance, reg_covar=1e-6)
    start = mx.Mixture(np.asarray(weights), family.make_params(means, covs), family)
    return mx.fit(x, family, k, key=None, init=start, max_iter=max_iter, tol=tol, chunk_size=chunk_size)


def stored_covariances(covariance, result):
    covs = np.asarray(result.mixture.params.covariances)
    return covs[0] if covariance == "tied" else covs


DATASETS = {
    "old_faithful": (lambda: mx.datasets.load_old_faithful(), 2),
    "synthetic_5x8": (lambda: synthetic_5x8(seed=0, n=1500), 5),
}


@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_matches_sklearn_iteration_by_iteration(dataset, covariance):
    load, k = DATASETS[dataset]
    x = load()
    weights, means, covs = initial_parameters(x, k, covariance, seed=3)
    # tol=0: both run exactly max_iter iterations.
    ours = our_fit(x, k, covariance, weights, means, covs, max_iter=25, tol=0.0, chunk_size=128)
    ref = sklearn_fit(x, k, covariance, weights, means, covs, max_iter=25, tol=0.0)

    assert int(ours.n_iter) == ref.n_iter_ == 25
    assert not bool(ours.converged)
    np.testing.assert_allclose(ours.mixture.weights, ref.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.mixture.params.means, ref.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stored_covariances(covariance, ours), ref.covariances_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.mixture.params.precisions_cholesky[0] if covariance == "tied"
                               else ours.mixture.params.precisions_cholesky,
                               ref.precisions_cholesky_, rtol=1e-6, atol=1e-9)
    # scikit-learn's lower_bound_ is the log-likelihood before the last M-step.
    np.testing.assert_allclose(ours.history[24], ref.lower_bound_, rtol=1e-6)
    np.testing.assert_allclose(ours.log_likelihood, ref.score(x), rtol=1e-6)
    np.testing.assert_allclose(ours.mixture.log_prob(x), ref.score_samples(x), rtol=1e-6)
    np.testing.assert_allclose(ours.mixture.responsibilities(x), ref.predict_proba(x), atol=1e-6)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_stops_where_sklearn_stops(covariance):
    x = mx.datasets.load_old_faithful()
    weights, means, covs = initial_parameters(x, 2, covariance, seed=1)
    ours = our_fit(x, 2, covariance, weights, means, covs, max_iter=200, tol=1e-3)
    ref = sklearn_fit(x, 2, covariance, weights, means, covs, max_iter=200, tol=1e-3)
    assert ref.converged_ and bool(ours.converged)
    assert int(ours.n_iter) == ref.n_iter_
    np.testing.assert_allclose(ours.mixture.params.means, ref.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.log_likelihood, ref.score(x), rtol=1e-6)
    history = np.asarray(ours.history)
    assert np.all(np.isfinite(history[: ref.n_iter_])) and np.all(np.isnan(history[ref.n_iter_ :]))


def test_random_init_reaches_sklearn_optimum_on_old_faithful():
    x = mx.datasets.load_old_faithful()
    ours = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), tol=1e-8, max_iter=500)
    ref = GaussianMixture(2, covariance_type="full", tol=1e-8, max_iter=500, n_init=5, random_state=0).fit(x)
    np.testing.assert_allclose(ours.log_likelihood, ref.score(x), rtol=1e-6)
    order = np.argsort(np.asarray(ours.mixture.params.means)[:, 0])
    ref_order = np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(np.asarray(ours.mixture.params.means)[order], ref.means_[ref_order], rtol=1e-4)
