"""Edge cases found in review: each once produced a wrong answer or NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from tests.helpers import blobs


def test_default_init_separates_categorical_clusters():
    """K-means centres are snapped to data rows, so category codes stay valid codes."""
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 600)
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    x = np.stack([[rng.choice(4, p=p[c]) for c in z] for _ in range(4)], axis=1).astype(float)
    for init in ("kmeans++", "kmeans"):
        r = mx.fit(x, mx.Categorical((4, 4, 4, 4)), 2, key=jax.random.key(1), init=init)
        assert np.min(np.asarray(r.mixture.weights)) > 0.4, init


def test_fit_does_not_depend_on_the_scale_of_sample_weight():
    x = blobs(0, 300, means=[[0, 0], [6, 0]], scales=[1.0, 0.5], weights=[0.95, 0.05])[0]
    w = np.random.default_rng(1).integers(1, 4, size=len(x)).astype(float)
    family = mx.Gaussian("full")
    start = mx.fit(x, family, 2, key=jax.random.key(0), max_iter=1).mixture
    fits = [mx.fit(x, family, 2, key=None, init=start, sample_weight=w * s, max_iter=20, tol=0.0) for s in (1.0, 1e-9, 1 / w.sum())]
    for other in fits[1:]:
        np.testing.assert_allclose(other.history, fits[0].history, rtol=1e-12)
        np.testing.assert_allclose(other.mixture.params.covariances, fits[0].mixture.params.covariances, rtol=1e-10)


def test_integer_mixture_weights_become_floats():
    g = mx.Gaussian("diag")
    m = mx.Mixture(np.array([1]), g.make_params(np.zeros((1, 1)), np.ones((1, 1))), g)
    assert jnp.issubdtype(m.dtype, jnp.floating)
    np.testing.assert_allclose(m.log_prob(np.array([[0.7]])), [-0.5 * np.log(2 * np.pi) - 0.245], rtol=1e-12)
    with pytest.raises(TypeError, match="`weights`"):
        mx.Mixture(np.array([True]), m.params, g)


def test_responsibilities_of_impossible_rows_are_zero_not_nan():
    g = mx.Gaussian("spherical")
    m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-1.0], [1.0]]), np.array([1e-3, 1e-3])), g)
    r = np.asarray(m.responsibilities(np.array([[1e300], [0.0]])))
    assert np.all(np.isfinite(r))
    np.testing.assert_allclose(r[1], [0.5, 0.5])


def test_cli_main_leaves_the_x64_setting_as_it_found_it():
    from mixtures.cli import main

    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", False)
    try:
        assert main(["demo", "--components", "0"]) == 2
        assert jax.config.read("jax_enable_x64") is False
    finally:
        jax.config.update("jax_enable_x64", before)


def test_random_init_honours_labels():
    x, z = blobs(2, 200, means=[[0, 0], [8, 8]], scales=[1.0, 1.0])
    labels = np.where(np.arange(200) < 20, z, -1)
    r = mx.fit(x, mx.Gaussian("diag"), 2, key=jax.random.key(3), init="random", labels=labels)
    np.testing.assert_array_equal(np.asarray(r.mixture.predict(x))[:20], z[:20])


def test_boundary_clips_are_representable_in_float32():
    rng = np.random.default_rng(0)
    counts = np.concatenate([np.zeros((100, 1)), rng.poisson(3.0, (100, 1))]).astype(np.float32)
    r = mx.fit(counts, mx.Poisson(min_rate=1e-50), 2, key=jax.random.key(0))
    assert np.isfinite(float(r.log_likelihood))
    binary = np.concatenate([np.zeros((100, 2)), np.ones((100, 2))]).astype(np.float32)
    r = mx.fit(binary, mx.Bernoulli(min_prob=1e-9), 2, key=jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(r.history)[: int(r.n_iter)]))


def test_score_is_the_weighted_mean_log_likelihood():
    x = blobs(4, 90, means=[[0, 0], [5, 5]], scales=[1.0, 1.0])[0]
    m = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), max_iter=5).mixture
    w = np.random.default_rng(0).integers(0, 3, len(x)).astype(float)
    logp = np.asarray(m.log_prob(x))
    np.testing.assert_allclose(m.score(x), logp.mean(), rtol=1e-12)
    np.testing.assert_allclose(m.score(x, sample_weight=w, chunk_size=16), np.sum(w * logp) / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(m.score(np.repeat(x, w.astype(int), axis=0)), np.sum(w * logp) / w.sum(), rtol=1e-12)


@pytest.mark.slow
def test_von_mises_fisher_mean_parameters_stay_accurate_at_small_concentration():
    a = mx.VonMisesFisher().log_partition
    np.testing.assert_allclose(jax.grad(a)(jnp.array([1e-4, 0.0, 0.0], jnp.float32))[0], 1e-4 / 3, rtol=1e-5)
    np.testing.assert_allclose(jax.hessian(a)(jnp.array([1e-8, 0.0, 0.0])), np.eye(3) / 3, rtol=1e-8)
