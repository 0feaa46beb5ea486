"""Generalised EM (optax M-step) through the Student-t family, against SciPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

import mixtures as mx
from mixtures._src.core.family import Family
from mixtures._src.families.student_t import StudentT, StudentTParams

# One shape for every em_step test, so they share compilations.
N, D, K = 150, 2, 3


def t_mixture_data(seed, n, locations, scales, weights, dof):
    """Rows of a Student-t mixture with independent features; returns (x, z)."""
    rng = np.random.default_rng(seed)
    locations, scales = np.asarray(locations, float), np.asarray(scales, float)
    z = rng.choice(len(weights), size=n, p=weights)
    return locations[z] + scales[z] * rng.standard_t(dof, (n, locations.shape[1])), z


def scipy_component_log_probs(x, dof, locations, scales):
    """(N, K) log p(xₙ | θₖ) with SciPy's univariate t, summed over features."""
    return np.stack([stats.t.logpdf(x, dof, m, s).sum(axis=1) for m, s in zip(locations, scales)], axis=1)


def scipy_q(x, dof, previous, params):
    """(K,) Qₖ = Σₙ rₙₖ log p(xₙ | θₖ), rₙₖ the responsibilities under ``previous``."""
    lp = scipy_component_log_probs(x, dof, *map(np.asarray, previous.params))
    lp = lp + np.log(np.asarray(previous.weights))
    resp = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
    return (resp * scipy_component_log_probs(x, dof, *map(np.asarray, params))).sum(axis=0)


def random_mixture(seed, family, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = StudentTParams(rng.normal(0.0, 3.0, (K, D)), np.exp(rng.normal(0.0, 0.7, (K, D))))
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    return mx.Mixture(jnp.asarray(rng.dirichlet(np.ones(K)), dtype), params, family)


def small_data(seed=0):
    locations, scales = [[-3, 0], [0, 3], [3, 0]], [[1, 1], [0.5, 2], [1.5, 0.7]]
    x, _ = t_mixture_data(seed, N, locations, scales, [0.3, 0.3, 0.4], 2.5)
    return x


def test_log_prob_matches_scipy_and_vmapped_default():
    rng = np.random.default_rng(0)
    family = StudentT(dof=2.5)
    params = family.make_params(rng.normal(size=(K, 4)), rng.uniform(0.2, 3.0, (K, 4)))
    x = rng.standard_t(1.5, (20, 4)) * 3.0
    got = family.log_prob_components(params, x)
    np.testing.assert_allclose(got, scipy_component_log_probs(x, 2.5, *params), rtol=1e-12)
    np.testing.assert_array_equal(got, Family.log_prob_components(family, params, x))


def test_sampling_matches_scipy():
    family = StudentT(dof=3.0)
    one = StudentTParams(jnp.array([2.0, -1.0], jnp.float32), jnp.array([0.5, 3.0], jnp.float32))
    keys = jax.random.split(jax.random.key(0), 20_000)
    draws = jax.jit(jax.vmap(family.sample, in_axes=(None, 0)))(one, keys)
    assert draws.dtype == jnp.float32 and draws.shape == (20_000, 2)
    for d, (m, s) in enumerate(zip([2.0, -1.0], [0.5, 3.0])):
        assert stats.kstest(np.asarray(draws[:, d], np.float64), stats.t(3.0, m, s).cdf).pvalue > 1e-3


def test_configuration_is_validated_static_and_keyword_only():
    assert StudentT(3.0).dof == 3.0 and StudentT(3.0).learning_rate == 0.05  # dof: the one positional field
    assert StudentT(dof=3, n_steps=10) == StudentT(dof=3.0, n_steps=10)
    assert hash(StudentT(dof=3)) == hash(StudentT(dof=3.0))
    with pytest.raises(ValueError, match="`dof`"):
        StudentT(dof=0.0)
    with pytest.raises(TypeError, match="`dof`"):
        StudentT(dof="4")
    with pytest.raises(ValueError, match="`learning_rate`"):
        StudentT(learning_rate=-0.1)
    with pytest.raises(ValueError, match="`n_steps`"):
        StudentT(n_steps=0)
    with pytest.raises(TypeError, match="`n_steps`"):
        StudentT(n_steps=True)
    with pytest.raises(ValueError, match="`scales`"):
        StudentT().make_params(np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(TypeError, match="summed statistics"):
        StudentT().m_step((), jnp.ones(2), None)
    assert StudentT().n_free_parameters(3, 4) == 24


@pytest.mark.parametrize("seed", [0, 1])
def test_log_likelihood_never_decreases(seed):
    # Tails heavier (ν = 1.5) than the model's (ν = 4), overlapping clusters.
    locations, scales = [[0, 0], [2, 1], [-1, 3]], [[1, 1], [0.6, 1.5], [1.2, 0.8]]
    x, _ = t_mixture_data(7, 600, locations, scales, [0.5, 0.3, 0.2], 1.5)
    r = mx.fit(x, StudentT(), 3, key=jax.random.key(seed), max_iter=30, tol=0.0)
    h = np.append(np.asarray(r.history), float(r.log_likelihood))
    assert int(r.n_iter) == 30 and np.all(np.isfinite(h))
    steps = np.diff(h)
    assert np.all(steps >= -1e-12 * np.abs(h).max()), steps.min()
    assert h[-1] - h[0] > 1e-2  # it did climb


def test_recovers_locations_scales_and_weights():
    dof, n = 4.0, 2000
    locations = np.array([[-4.0, 0.0], [4.0, 2.0]])
    scales = np.array([[1.0, 0.5], [0.8, 1.5]])
    weights = np.array([0.4, 0.6])
    x, _ = t_mixture_data(3, n, locations, scales, weights, dof)
    m = mx.fit(x, StudentT(dof=dof), 2, key=jax.random.key(0), max_iter=60, tol=1e-9).mixture
    order = np.argsort(np.asarray(m.params.locations[:, 0]))
    got_loc, got_scale = np.asarray(m.params.locations)[order], np.asarray(m.params.scales)[order]
    nk = n * weights[:, None]
    # Standard errors from the Student-t Fisher information per observation:
    # location (ν+1) / ((ν+3) σ²), log-scale 2ν / (ν+3).
    se_loc = scales * np.sqrt((dof + 3) / ((dof + 1) * nk))
    se_scale = scales * np.sqrt((dof + 3) / (2 * dof * nk))
    assert np.all(np.abs(got_loc - locations) < 5 * se_loc), (got_loc, locations)
    assert np.all(np.abs(got_scale - scales) < 5 * se_scale), (got_scale, scales)
    np.testing.assert_allclose(np.asarray(m.weights)[order], weights, atol=5 * np.sqrt(0.24 / n))


@pytest.mark.parametrize("learning_rate", [0.05, 3.0])  # 3.0: wild steps, some rejected
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_m_step_never_decreases_q(learning_rate, seed):
    family = StudentT(dof=4.0, learning_rate=learning_rate)
    x = small_data(seed % 7)
    previous = random_mixture(seed, family)
    new, ll = mx.em_step(previous, x)
    for leaf in jax.tree.leaves(new):
        assert np.all(np.isfinite(np.asarray(leaf)))
    q_old, q_new = scipy_q(x, 4.0, previous, previous.params), scipy_q(x, 4.0, previous, new.params)
    assert np.all(q_new >= q_old - 1e-10 * np.abs(q_old)), q_new - q_old
    # Per component: new parameters only with a strict gain, else exactly the previous ones.
    kept = np.all(np.asarray(new.params.locations) == np.asarray(previous.params.locations), axis=1)
    kept &= np.all(np.asarray(new.params.scales) == np.asarray(previous.params.scales), axis=1)
    assert np.all(kept | (q_new > q_old)), (kept, q_new - q_old)
    if learning_rate == 0.05:
        assert np.sum(q_new - q_old) > 1e-3  # the default makes progress from a random start
    assert float(jnp.mean(new.log_prob(x))) >= float(ll) - 1e-12 * abs(float(ll))


def test_chunked_m_step_equals_single_chunk():
    x = small_data(1)
    w = np.random.default_rng(0).uniform(0.0, 2.0, N)
    previous = random_mixture(5, StudentT())
    one, ll_one = mx.em_step(previous, x, sample_weight=w)
    many, ll_many = mx.em_step(previous, x, sample_weight=w, chunk_size=16)  # 150 = 9·16 + 6
    np.testing.assert_allclose(ll_many, ll_one, rtol=1e-13)
    for a, b in zip(jax.tree.leaves(many), jax.tree.leaves(one)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("far_weight", [0.0, 0.2])
def test_empty_component_keeps_its_parameters_and_stays_finite(far_weight):
    x = small_data(2)
    family = StudentT()
    params = family.make_params([[-3.0, 0.0], [3.0, 0.0], [1e6, 1e6]], np.ones((K, D)))
    m = mx.Mixture(jnp.array([0.5 - far_weight / 2, 0.5 - far_weight / 2, far_weight]), params, family)
    previous_ll = -np.inf
    for _ in range(4):
        m, ll = mx.em_step(m, x)
        assert float(ll) >= previous_ll - 1e-12 * abs(float(ll))
        previous_ll = float(ll)
        for leaf in jax.tree.leaves(m):
            assert np.all(np.isfinite(np.asarray(leaf)))
        np.testing.assert_array_equal(m.params.locations[2], params.locations[2])
        np.testing.assert_array_equal(m.params.scales[2], params.scales[2])
        assert float(m.weights[2]) < 1e-12


def test_float32_m_step_keeps_dtype_and_q():
    x = small_data(3).astype(np.float32)
    previous = random_mixture(11, StudentT(), np.float32)
    new, _ = mx.em_step(previous, x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new))
    x64 = x.astype(np.float64)
    q_old, q_new = scipy_q(x64, 4.0, previous, previous.params), scipy_q(x64, 4.0, previous, new.params)
    assert np.all(q_new >= q_old - 1e-4 * np.abs(q_old)), q_new - q_old
    assert np.sum(q_new - q_old) > 1e-1
