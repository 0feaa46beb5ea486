"""Initialisation methods, vmapped restarts and partial labels."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from mixtures import engine
from mixtures.engine import EMOptions, Rows
from mixtures._src.fitting import fit as fitting
from mixtures._src.fitting.init import INIT_METHODS, initialize, kmeans_plus_plus, lloyd
from tests.helpers import blobs

X, Z = blobs(3, 240, means=[[0, 0], [8, 0], [0, 8], [8, 8]], scales=[0.6, 0.8, 1.0, 0.7])
XJ = jnp.asarray(X)


@pytest.mark.parametrize("method", [m for m in INIT_METHODS if m != "hc"])  # "hc" uses no key: tests/test_init_hc.py
def test_init_is_a_pure_function_of_the_key(method):
    init = jax.jit(initialize, static_argnums=(0, 1, 2, 6))
    a = init(method, mx.Gaussian("full"), 4, jax.random.key(5), XJ, None, 64)
    b = init(method, mx.Gaussian("full"), 4, jax.random.key(5), XJ, None, 64)
    c = init(method, mx.Gaussian("full"), 4, jax.random.key(6), XJ, None, 64)
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(la, lb)
    assert not np.allclose(a.params.means, c.params.means)
    assert np.all(np.isfinite(np.asarray(a.params.covariances)))
    np.testing.assert_allclose(float(jnp.sum(a.weights)), 1.0, rtol=1e-12)


def test_random_init_does_not_depend_on_the_chunk_size():
    init = jax.jit(initialize, static_argnums=(0, 1, 2, 6))
    a = init("random", mx.Gaussian("diag"), 4, jax.random.key(1), XJ, None, 7)
    b = init("random", mx.Gaussian("diag"), 4, jax.random.key(1), XJ, None, 240)
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(la, lb, rtol=1e-10)
    # Random responsibilities put every mean near the data mean, as scikit-learn's "random".
    assert np.all(np.abs(np.asarray(a.params.means) - X.mean(axis=0)) < 1.5)


def test_kmeans_plus_plus_seeds_one_centre_per_separated_cluster():
    far, labels = blobs(0, 400, means=[[0, 0], [100, 0], [0, 100], [100, 100]], scales=[1.0] * 4)
    for seed in range(5):
        centres = np.asarray(kmeans_plus_plus(jax.random.key(seed), far, None, 4))
        nearest = np.argmin(((centres[:, None, :] - np.array([[0, 0], [100, 0], [0, 100], [100, 100]])[None]) ** 2).sum(-1), axis=1)
        assert sorted(nearest.tolist()) == [0, 1, 2, 3]


def test_kmeans_plus_plus_never_seeds_on_zero_weight_rows():
    w = np.where(X[:, 0] > 4, 1.0, 0.0)
    for seed in range(3):
        centres = np.asarray(kmeans_plus_plus(jax.random.key(seed), XJ, jnp.asarray(w), 2))
        assert np.all(centres[:, 0] > 4)


def test_lloyd_matches_numpy():
    start = X[[0, 1, 2, 3]]
    centres = np.asarray(jax.jit(lloyd, static_argnums=(3, 4))(jnp.asarray(start), XJ, None, 100, 64))
    ref = start.copy()
    for _ in range(100):
        lab = np.argmin(((X[:, None] - ref[None]) ** 2).sum(-1), axis=1)
        ref = np.stack([X[lab == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(centres, ref, rtol=1e-10)


def test_vmapped_restarts_equal_a_python_loop():
    family, k, r = mx.Gaussian("full"), 4, 6
    result = mx.fit(X, family, k, key=jax.random.key(11), init="random_from_data", n_init=r, max_iter=40, tol=0.0)
    keys = jax.random.split(jax.random.key(11), r)
    options = EMOptions(chunk_size=result.mixture._chunk(None), max_iter=40)

    @functools.partial(jax.jit, static_argnums=(0, 1, 2, 6))
    def one(family, k, method, key, rows, tol, options):  # one restart, whole, in one program
        return engine.fit_loop(fitting.start_restart(family, k, method, key, rows, options), rows, tol, options)

    looped = [one(family, k, "random_from_data", keys[i], Rows(XJ), jnp.asarray(0.0), options) for i in range(r)]
    np.testing.assert_allclose(result.all_log_likelihoods, [float(f.log_likelihood) for f in looped], rtol=1e-10)
    np.testing.assert_array_equal(result.all_n_iter, [int(f.n_iter) for f in looped])
    best = int(np.argmax([float(f.log_likelihood) for f in looped]))
    np.testing.assert_allclose(result.mixture.params.means, looped[best].mixture.params.means, rtol=1e-10)
    np.testing.assert_allclose(result.history, looped[best].history, rtol=1e-10)
    assert float(result.log_likelihood) == float(np.max(result.all_log_likelihoods))
    assert result.all_converged.shape == (r,)


def test_fully_labelled_data_gives_the_class_conditional_mle():
    result = mx.fit(X, mx.Gaussian("full", reg_covar=0.0), 4, key=jax.random.key(0), labels=Z, max_iter=5)
    for k in range(4):
        xk = X[Z == k]
        np.testing.assert_allclose(result.mixture.params.means[k], xk.mean(0), rtol=1e-10)
        np.testing.assert_allclose(result.mixture.params.covariances[k], np.cov(xk.T, bias=True), rtol=1e-8)
    np.testing.assert_allclose(result.mixture.weights, np.bincount(Z) / len(Z), rtol=1e-10)


def test_partial_labels_fix_labelled_rows_and_name_the_components():
    labels = np.full(len(X), -1)
    for k in range(4):
        labels[np.flatnonzero(Z == k)[:3]] = k  # three labelled rows per cluster
    result = mx.fit(X, mx.Gaussian("full"), 4, key=jax.random.key(2), labels=labels)
    pred = np.asarray(result.mixture.predict(X))
    np.testing.assert_array_equal(pred[labels >= 0], labels[labels >= 0])
    assert np.mean(pred == Z) > 0.97  # component k is cluster k


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_init=0), ValueError, "`n_init`"),
        (dict(labels=np.full(240, 4)), ValueError, r"`labels`.*0\.\.3.*4 at index 0"),
        (dict(labels=np.full(239, -1)), ValueError, r"`labels`.*\(240,\)"),
        (dict(labels=np.full(240, 0.5)), TypeError, "`labels`"),
        (dict(labels=np.full(240, -2)), ValueError, "`labels`"),
    ],
)
def test_bad_restart_and_label_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mx.fit(X, mx.Gaussian(), 4, key=jax.random.key(0), **kwargs)


def test_warm_start_takes_one_restart():
    m = mx.fit(X, mx.Gaussian("diag"), 4, key=jax.random.key(0), max_iter=2).mixture
    with pytest.raises(ValueError, match="`n_init` must be 1"):
        mx.fit(X, mx.Gaussian("diag"), 4, key=None, init=m, n_init=3)
