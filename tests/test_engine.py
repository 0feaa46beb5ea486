"""The engine: chunking, the batched density, em_step, empty components, float32 accuracy."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.engine import em as engine
from tests.helpers import (
    blobs,
    dense_covariances,
    mixture_log_prob,
    responsibilities,
    slow_where,
    weighted_moments_two_pass,
)

COVARIANCES = ["full", "diag", "spherical", "tied"]


def three_blobs(n=503, seed=0):
    return blobs(seed, n, means=[[0, 0, 0], [5, 5, 0], [0, 6, 6]], scales=[1.0, 0.7, 1.3])[0]


@pytest.mark.parametrize("covariance", slow_where(COVARIANCES, {"full", "tied"}))
def test_chunked_equals_single_chunk(covariance):
    x = three_blobs()  # 503 rows: not a multiple of the chunk size
    family = mx.Gaussian(covariance)
    one = mx.fit(x, family, 3, key=jax.random.key(1), max_iter=20, tol=0.0, chunk_size=x.shape[0])
    many = mx.fit(x, family, 3, key=jax.random.key(1), max_iter=20, tol=0.0, chunk_size=64)
    np.testing.assert_allclose(many.history, one.history, rtol=1e-10)
    for a, b in zip(jax.tree.leaves(many.mixture), jax.tree.leaves(one.mixture)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        many.mixture.log_prob(x, chunk_size=50), one.mixture.log_prob(x, chunk_size=1000), rtol=1e-12
    )


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_batched_density_equals_vmapped_single_density(covariance):
    x = three_blobs(n=40)
    family = mx.Gaussian(covariance)
    m = mx.fit(x, family, 3, key=jax.random.key(0), max_iter=3).mixture
    batched = family.log_prob_components(m.params, jnp.asarray(x))
    generic = mx.Family.log_prob_components(family, m.params, jnp.asarray(x))
    np.testing.assert_allclose(batched, generic, rtol=1e-12)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_densities_and_responsibilities_match_scipy(covariance):
    x = three_blobs(n=60)
    m = mx.fit(x, mx.Gaussian(covariance), 3, key=jax.random.key(2), max_iter=5).mixture
    w = np.asarray(m.weights)
    means = np.asarray(m.params.means)
    dense = dense_covariances("full" if covariance == "tied" else covariance, m.params.covariances, 3, 3)
    np.testing.assert_allclose(m.log_prob(x), mixture_log_prob(x, w, means, dense), rtol=1e-10)
    r = np.asarray(m.responsibilities(x))
    np.testing.assert_allclose(r, responsibilities(x, w, means, dense), atol=1e-10)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(m.predict(x), r.argmax(axis=1))


def test_em_step_is_jittable_and_matches_numpy_m_step():
    x = three_blobs(n=300)
    m = mx.fit(x, mx.Gaussian("full"), 3, key=jax.random.key(0), max_iter=2).mixture
    new, ll = jax.jit(mx.em_step)(m, jnp.asarray(x))
    w, means = np.asarray(m.weights), np.asarray(m.params.means)
    r = responsibilities(x, w, means, np.asarray(m.params.covariances))
    nk, ref_means, ref_covs = weighted_moments_two_pass(x, r)
    np.testing.assert_allclose(ll, mixture_log_prob(x, w, means, np.asarray(m.params.covariances)).mean(), rtol=1e-10)
    np.testing.assert_allclose(new.weights, nk / nk.sum(), rtol=1e-9)
    np.testing.assert_allclose(new.params.means, ref_means, rtol=1e-9)
    np.testing.assert_allclose(new.params.covariances, ref_covs + 1e-6 * np.eye(3), rtol=1e-9)


def test_sample_weight_equals_repeated_rows():
    x = three_blobs(n=120)
    counts = np.random.default_rng(0).integers(0, 4, size=x.shape[0])
    family = mx.Gaussian("full")
    start = mx.fit(x, family, 3, key=jax.random.key(0), max_iter=1).mixture
    weighted = mx.fit(x, family, 3, key=None, init=start, sample_weight=counts, max_iter=15, tol=0.0, chunk_size=32)
    repeated = mx.fit(np.repeat(x, counts, axis=0), family, 3, key=None, init=start, max_iter=15, tol=0.0)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-9)
    np.testing.assert_allclose(weighted.mixture.params.covariances, repeated.mixture.params.covariances, rtol=1e-8)


def test_empty_component_keeps_previous_parameters_and_stays_finite():
    x = three_blobs(n=200)
    family = mx.Gaussian("full")
    means = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [1e4, 1e4, 1e4]])  # the last sees no data
    start = mx.Mixture(np.array([0.5, 0.5, 0.0]), family.make_params(means, np.stack([np.eye(3)] * 3)), family)
    new, ll = mx.em_step(start, x)
    assert np.isfinite(float(ll))
    for leaf in jax.tree.leaves(new):
        assert np.all(np.isfinite(leaf))
    np.testing.assert_array_equal(new.params.means[2], means[2])
    np.testing.assert_array_equal(new.params.precisions_cholesky[2], start.params.precisions_cholesky[2])
    assert float(new.weights[2]) < 1e-12
    result = mx.fit(x, family, 3, key=None, init=start, max_iter=10)
    assert np.all(np.isfinite(np.asarray(result.mixture.params.covariances)))
    assert np.isfinite(float(result.log_likelihood))


def test_float32_covariances_accurate_far_from_origin():
    """Clusters at 1e4 with unit spread: one float32 M-step against a float64 two-pass reference."""
    centres = 1e4 + np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 0.0, 8.0, 0.0], [0.0, 9.0, 0.0, 9.0]])
    x64, _ = blobs(5, 6000, means=centres, scales=[1.0, 0.5, 2.0])
    x32 = x64.astype(np.float32)
    family = mx.Gaussian("full")
    start = mx.Mixture(
        np.full(3, 1 / 3), family.make_params(centres + 0.3, np.stack([np.eye(4) * s for s in (1.5, 1.0, 3.0)])), family
    )
    start32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), start)
    new32, _ = mx.em_step(start32, x32, chunk_size=512)
    assert new32.params.means.dtype == jnp.float32

    r = responsibilities(x32.astype(np.float64), np.asarray(start.weights), np.asarray(start.params.means),
                         np.asarray(start.params.covariances))
    _, ref_means, ref_covs = weighted_moments_two_pass(x32, r)
    ref_covs = ref_covs + 1e-6 * np.eye(4)
    got = np.asarray(new32.params.covariances, dtype=np.float64)
    rel = np.linalg.norm(got - ref_covs, axis=(1, 2)) / np.linalg.norm(ref_covs, axis=(1, 2))
    assert np.all(rel < 1e-3), rel
    np.testing.assert_allclose(np.asarray(new32.params.means, np.float64), ref_means, rtol=0, atol=1e-2)

    # A whole float32 fit lands where the float64 fit does.
    fit32 = mx.fit(x32, family, 3, key=None, init=start32, max_iter=30, tol=0.0)
    fit64 = mx.fit(x64.astype(np.float32).astype(np.float64), family, 3, key=None, init=start, max_iter=30, tol=0.0)
    c32 = np.asarray(fit32.mixture.params.covariances, np.float64)
    c64 = np.asarray(fit64.mixture.params.covariances)
    assert np.all(np.linalg.norm(c32 - c64, axis=(1, 2)) / np.linalg.norm(c64, axis=(1, 2)) < 1e-3)


def test_sampling_matches_parameters():
    family = mx.Gaussian("full")
    means = np.array([[0.0, 0.0], [6.0, -2.0], [-5.0, 4.0]])
    covs = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.3]], [[3.0, 0.0], [0.0, 0.2]]])
    weights = np.array([0.2, 0.5, 0.3])
    m = mx.Mixture(weights, family.make_params(means, covs), family)
    n = 200_000
    x, z = m.sample(n, key=jax.random.key(7))
    x, z = np.asarray(x), np.asarray(z)
    assert x.shape == (n, 2) and z.shape == (n,)
    freq = np.bincount(z, minlength=3) / n
    np.testing.assert_allclose(freq, weights, atol=5 * np.sqrt(0.25 / n))
    for k in range(3):
        xk = x[z == k]
        se = np.sqrt(np.diag(covs[k]) / len(xk))
        np.testing.assert_allclose(xk.mean(axis=0), means[k], atol=5 * se.max())
        np.testing.assert_allclose(np.cov(xk.T), covs[k], atol=5 * np.sqrt(2 / len(xk)) * covs[k].max())


@pytest.mark.parametrize("covariance", ["diag", "spherical"])
def test_sampling_diagonal_layouts(covariance):
    family = mx.Gaussian(covariance)
    covs = np.array([[1.0, 4.0], [0.25, 9.0]]) if covariance == "diag" else np.array([1.0, 4.0])
    m = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.array([[0.0, 0.0], [10.0, 10.0]]), covs), family)
    x, z = m.sample(50_000, key=jax.random.key(1))
    x, z = np.asarray(x), np.asarray(z)
    dense = dense_covariances(covariance, covs, 2, 2)
    for k in range(2):
        np.testing.assert_allclose(np.var(x[z == k], axis=0), np.diag(dense[k]), rtol=0.05)


def test_sampling_is_a_function_of_the_key():
    family = mx.Gaussian("diag")
    m = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    a, _ = m.sample(10, key=jax.random.key(3))
    b, _ = m.sample(10, key=jax.random.key(3))
    c, _ = m.sample(10, key=jax.random.key(4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_history_and_final_log_likelihood_are_consistent():
    x = three_blobs()
    r = mx.fit(x, mx.Gaussian("full"), 3, key=jax.random.key(0), max_iter=100, tol=1e-6)
    n = int(r.n_iter)
    h = np.asarray(r.history)
    assert bool(r.converged) and 1 < n < 100
    assert np.all(np.isfinite(h[:n])) and np.all(np.isnan(h[n:]))
    assert abs(h[n - 1] - h[n - 2]) < 1e-6
    np.testing.assert_allclose(r.log_likelihood, np.mean(r.mixture.log_prob(x)), rtol=1e-12)
    assert float(r.log_likelihood) >= h[n - 1]
    assert isinstance(engine.FitResult(*r), mx.FitResult)


def test_callback_receives_every_iteration_of_every_restart():
    x = mx.datasets.load_old_faithful()
    seen = []
    result = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), n_init=3, max_iter=40, callback=seen.append)
    assert all(isinstance(p, mx.Progress) for p in seen)
    n_iter = np.asarray(result.all_n_iter)
    for r in range(3):
        mine = [p for p in seen if p.restart == r]
        assert sorted(p.iteration for p in mine) == list(range(1, n_iter[r] + 1))
    best = int(np.argmax(np.asarray(result.all_log_likelihoods)))
    reported = np.array([p.log_likelihood for p in sorted(seen, key=lambda p: p.iteration) if p.restart == best])
    np.testing.assert_allclose(reported, np.asarray(result.history)[: n_iter[best]], rtol=1e-6)


def test_callbacks_of_fits_running_at_once_in_threads_each_get_their_own_reports():
    x = mx.datasets.load_old_faithful()
    keys, seen, results = [0, 1, 2, 3], {}, {}
    family = mx.Gaussian("full")
    mx.fit(x, family, 2, key=jax.random.key(9), n_init=2, max_iter=40, callback=lambda p: None)  # compiled before

    def run(seed):
        mine = seen.setdefault(seed, [])
        results[seed] = mx.fit(x, family, 2, key=jax.random.key(seed), n_init=2, max_iter=40, callback=mine.append)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in keys:
        n_iter = np.asarray(results[seed].all_n_iter)
        for r in range(2):
            mine = sorted(p.iteration for p in seen[seed] if p.restart == r)
            assert mine == list(range(1, n_iter[r] + 1)), (seed, r)
        best = int(np.argmax(np.asarray(results[seed].all_log_likelihoods)))
        reported = [p.log_likelihood for p in sorted(seen[seed], key=lambda p: p.iteration) if p.restart == best]
        np.testing.assert_allclose(reported, np.asarray(results[seed].history)[: n_iter[best]], rtol=1e-6)


def test_callback_does_not_change_the_fit_and_must_be_callable():
    x = mx.datasets.load_old_faithful()
    plain = mx.fit(x, mx.Gaussian("diag"), 2, key=jax.random.key(1))
    counted = []
    reported = mx.fit(x, mx.Gaussian("diag"), 2, key=jax.random.key(1), callback=lambda p: counted.append(p))
    np.testing.assert_array_equal(np.asarray(plain.mixture.params.means), np.asarray(reported.mixture.params.means))
    assert len(counted) == int(reported.n_iter)
    with pytest.raises(TypeError, match="callback"):
        mx.fit(x, mx.Gaussian("diag"), 2, key=jax.random.key(1), callback=3)


def test_another_max_iter_or_tol_compiles_nothing():
    """``max_iter`` is the host loop's and ``tol`` is traced: one set of compiled programs serves all."""
    from tests.helpers import recording_compilations

    x = mx.datasets.load_old_faithful()
    for n_init in (1, 3):
        mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), n_init=n_init, max_iter=5, tol=1e-3)
        with recording_compilations() as compiled:
            again = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(1), n_init=n_init, max_iter=23, tol=0.0)
        assert compiled == [] and int(again.n_iter) == 23 and again.history.shape == (23,), n_init
        selected = mx.select(x, mx.Gaussian("full"), [1, 2], key=jax.random.key(0), n_init=n_init, max_iter=4)
        with recording_compilations() as compiled:
            again = mx.select(x, mx.Gaussian("full"), [1, 2], key=jax.random.key(0), n_init=n_init, max_iter=9, tol=0.0)
        assert compiled == [] and [int(r.n_iter) for r in again.results] == [9, 9], n_init
        assert int(selected.results[1].n_iter) == 4  # K = 1 converges sooner


def test_float32_stopping_test_is_on_the_recorded_values():
    """K-means on digits in float32: the history settles, and the fit says so at any tol.

    The stopping test once compared a value fused into a multiply-add (more precise than
    float32) while ``history`` kept the rounded one: bit-identical history entries for 290
    iterations and ``converged=False`` at tol ≤ 6e-7. A tol below float32's resolution of
    the log-likelihood stops within a few units in its last place; tol = 0 asks for every
    iteration and gets them.
    """
    from sklearn.datasets import load_digits

    from mixtures._src.engine.em import has_converged

    x = load_digits().data.astype(np.float32)
    for tol in (6e-7, 1e-12):  # tol is traced: one compiled program
        result = mx.fit(x, mx.Gaussian("identity"), 3, key=jax.random.key(1), assignment="hard",
                        update_weights=False, max_iter=300, tol=tol)
        n = int(result.n_iter)
        history = np.asarray(result.history)
        assert bool(result.converged) and n < 300 and np.all(np.isnan(history[n:]))
        assert bool(has_converged(history[n - 1], history[n - 2], np.float32(tol)))
        assert abs(history[n - 1] - history[n - 2]) <= 4 * np.finfo(np.float32).eps * abs(history[n - 1])
    every = mx.fit(x, mx.Gaussian("identity"), 3, key=jax.random.key(1), assignment="hard",
                   update_weights=False, max_iter=300, tol=0.0)
    assert int(every.n_iter) == 300 and not bool(every.converged)
    settled = np.asarray(every.history)[n - 1 :]  # within a few units in the last place
    np.testing.assert_allclose(settled, history[n - 1], rtol=4 * np.finfo(np.float32).eps)
