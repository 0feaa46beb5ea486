"""The von Mises–Fisher family and the log-Bessel function behind it, against SciPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.families.bessel import bessel_ratio, log_ive, log_iv
from mixtures._src.families.von_mises_fisher import VonMisesFisher, VonMisesFisherParams

ORDERS = np.array([0.0, 0.5, 1.0, 1.5, 4.0, 49.0])
KAPPAS = np.geomspace(1e-6, 1e4, 401)
VMF = VonMisesFisher()


@jax.jit
def _bessel_grid(nu, kappa):
    """(orders, kappas) grids of log(I_ν(κ) e^(−κ)) and I_{ν+1}(κ)/I_ν(κ)."""
    grid = jax.vmap(jax.vmap(lambda n, k: (log_ive(n, k), bessel_ratio(n, k)), (None, 0)), (0, None))
    return grid(nu, kappa)


def _log_iv_series(nu, kappa, terms=80):
    """log I_ν(κ) from the power series summed in log space (reference where ive underflows)."""
    k = np.arange(terms)[:, None]
    logs = (2 * k + nu) * np.log(kappa / 2)[None, :] - special.gammaln(k + 1) - special.gammaln(nu + k + 1)
    return special.logsumexp(logs, axis=0)


def test_log_bessel_matches_scipy_to_1e_10():
    log_i, ratio = (np.asarray(a) for a in _bessel_grid(jnp.asarray(ORDERS), jnp.asarray(KAPPAS)))
    ref = special.ive(ORDERS[:, None], KAPPAS[None, :])
    ok = ref > 0  # I_49(κ) e^(−κ) underflows for small κ
    assert ok.sum() > 0.9 * ok.size
    # exp(ours − log ref) − 1 is the relative error of I_ν(κ) itself.
    assert np.max(np.abs(np.expm1(log_i[ok] - np.log(ref[ok])))) < 1e-10
    small = KAPPAS < 1.0  # below the underflow, against the series in log space
    series = np.stack([_log_iv_series(nu, KAPPAS[small]) for nu in ORDERS]) - KAPPAS[small][None, :]
    np.testing.assert_allclose(log_i[:, small], series, rtol=0, atol=1e-10)
    ref_ratio = special.ive(ORDERS[:, None] + 1, KAPPAS[None, :]) / np.where(ok, ref, 1.0)
    np.testing.assert_allclose(ratio[ok & (ref_ratio > 0)], ref_ratio[ok & (ref_ratio > 0)], rtol=1e-10)


@jax.jit
def _special_values():
    nu, kappa = jnp.array([0.0, 1.5, 4.0, 49.0]), jnp.array([1e-3, 0.7, 30.0, 1e4])
    return {
        "at_zero": (log_iv(0.0, 0.0), log_iv(1.5, 0.0), jax.grad(log_iv, 1)(0.0, 0.0)),
        "huge": (log_iv(49.0, 1e300), log_ive(1.5, 1e8), log_iv(4.0, 300.0)),
        "invalid": (log_iv(1.0, -1.0), log_iv(-1.0, 1.0)),
        "grad": jax.vmap(jax.grad(log_iv, argnums=(0, 1)))(nu, kappa),
    }


def test_log_bessel_limits_derivatives_and_large_arguments():
    v = jax.tree.map(np.asarray, _special_values())
    # Limits at 0, finite far beyond the overflow of I_ν, NaN outside the domain.
    assert v["at_zero"][0] == 0.0 and v["at_zero"][1] == -np.inf and v["at_zero"][2] == 0.0
    assert np.isfinite(v["huge"][0])
    np.testing.assert_allclose(v["huge"][1], np.log(special.ive(1.5, 1e8)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(v["huge"][2], np.log(special.iv(4.0, 300.0)), rtol=1e-13)
    assert np.isnan(v["invalid"][0]) and np.isnan(v["invalid"][1])
    # d/dκ log I_ν = I_{ν+1}/I_ν + ν/κ; d/dν against central differences of SciPy.
    nu, kappa = np.array([0.0, 1.5, 4.0, 49.0]), np.array([1e-3, 0.7, 30.0, 1e4])
    d_nu, d_kappa = v["grad"]
    expected = special.ive(nu + 1, kappa) / special.ive(nu, kappa) + nu / kappa
    np.testing.assert_allclose(d_kappa, expected, rtol=1e-10)
    h = 1e-5
    central = (np.log(special.ive(nu[1:] + h, kappa[1:])) - np.log(special.ive(nu[1:] - h, kappa[1:]))) / (2 * h)
    np.testing.assert_allclose(d_nu[1:], central, rtol=1e-6, atol=1e-9)


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@jax.jit
def _densities(params, x):
    batched = VMF.log_prob_components(params, x)
    one_by_one = jax.vmap(jax.vmap(VMF.log_prob, (0, None)), (None, 0))(params, x)
    uniform = VMF.log_prob_components(params._replace(concentrations=jnp.zeros_like(params.concentrations)), x)
    return batched, one_by_one, uniform


@pytest.mark.parametrize("d", [3, 5])
def test_log_prob_matches_scipy(d):
    rng = np.random.default_rng(d)
    mus = _unit(rng.normal(size=(4, d)))
    kappas = np.array([1e-3, 1.0, 50.0, 5000.0])
    x = np.concatenate([stats.vonmises_fisher(mus[2], 3.0).rvs(8, random_state=rng), mus])
    batched, one_by_one, uniform = map(np.asarray, _densities(VMF.make_params(mus, kappas), x))
    ref = np.stack([stats.vonmises_fisher(m, k).logpdf(x) for m, k in zip(mus, kappas)], axis=1)
    np.testing.assert_allclose(batched, ref, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(one_by_one, batched, rtol=1e-13, atol=1e-12)
    area = 2 * np.pi ** (d / 2) / special.gamma(d / 2)  # κ = 0: one over the area of the sphere
    np.testing.assert_allclose(uniform, -np.log(area), rtol=1e-13)


def test_m_step_is_the_exact_weighted_maximum_likelihood():
    d = 5
    rng = np.random.default_rng(1)
    mu = _unit(rng.normal(size=d))
    tight = stats.vonmises_fisher(mu, 2000.0).rvs(100, random_state=rng)
    loose = stats.vonmises_fisher(-mu, 0.3).rvs(100, random_state=rng)
    x = np.concatenate([tight, loose])
    w = rng.uniform(0.1, 1.0, size=200)
    resp = np.stack([w * (np.arange(200) < 100), w, w * (np.arange(200) >= 100), np.eye(200)[7]], axis=1)
    previous = VMF.make_params(_unit(rng.normal(size=(4, d))), np.ones(4))
    step = jax.jit(lambda p, x, r: VMF.m_step(VMF.accumulate(p, x, r), jnp.sum(r, axis=0), p))
    new = step(previous, x, resp)

    s = resp.T @ x
    rbar = np.linalg.norm(s, axis=1) / resp.sum(axis=0)
    np.testing.assert_allclose(np.asarray(new.mean_directions), _unit(s), rtol=0, atol=1e-12)
    for k in range(3):  # root of A_D(κ) = r̄, by SciPy's Bessel functions and Brent's method
        kappa = optimize.brentq(
            lambda t: special.ive(d / 2, t) / special.ive(d / 2 - 1, t) - rbar[k], 1e-8, 1e7, xtol=1e-30, rtol=1e-15
        )
        np.testing.assert_allclose(float(new.concentrations[k]), kappa, rtol=1e-9)
    assert 0.99 < rbar[0] and rbar[2] < 0.3  # the range covered: concentrated and diffuse
    # A single point: r̄ = 1, clipped to the documented maximum instead of κ = ∞.
    assert float(new.concentrations[3]) == VMF.max_concentration


TRUE_DIRECTIONS = _unit([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -0.6, -0.8]])
TRUE_KAPPAS = np.array([50.0, 20.0, 8.0])
TRUE_COUNTS = np.array([1200, 1000, 800])


@pytest.fixture(scope="module")
def fitted():
    parts = [
        stats.vonmises_fisher(m, k).rvs(n, random_state=i)
        for i, (m, k, n) in enumerate(zip(TRUE_DIRECTIONS, TRUE_KAPPAS, TRUE_COUNTS))
    ]
    x = np.concatenate(parts)
    return x, mx.fit(x, VMF, 3, key=jax.random.key(0), tol=0.0, max_iter=60)


def test_recovers_a_three_component_mixture_on_the_sphere(fitted):
    x, result = fitted
    params, weights = result.mixture.params, np.asarray(result.mixture.weights)
    match = np.argmax(TRUE_DIRECTIONS @ np.asarray(params.mean_directions).T, axis=1)
    assert sorted(match) == [0, 1, 2]
    n = TRUE_COUNTS.sum()
    for j, k in enumerate(match):
        angle = np.arccos(np.clip(TRUE_DIRECTIONS[j] @ np.asarray(params.mean_directions[k]), -1, 1))
        assert angle < 5 / np.sqrt(TRUE_KAPPAS[j] * TRUE_COUNTS[j]), (j, angle)
        assert abs(float(params.concentrations[k]) / TRUE_KAPPAS[j] - 1) < 5 / np.sqrt(TRUE_COUNTS[j])
        p = TRUE_COUNTS[j] / n
        assert abs(weights[k] - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_em_history_is_monotone(fitted):
    _, result = fitted
    h = np.append(np.asarray(result.history), float(result.log_likelihood))
    assert np.all(np.isfinite(h)) and int(result.n_iter) == 60
    assert np.min(np.diff(h)) >= -1e-12 * np.max(np.abs(h))


def test_sample_moments_and_marginal():
    n = 10000
    mus = _unit([[0.3, -0.5, 0.8], [-0.9, 0.1, 0.4], [0.0, 0.6, -0.8]])  # first coordinate ≥ 0 and < 0
    kappas = np.array([0.0, 4.0, 1e4])
    params = VonMisesFisherParams(jnp.asarray(np.repeat(mus, n, 0)), jnp.asarray(np.repeat(kappas, n)))
    keys = jax.random.split(jax.random.key(3), 3 * n)
    draws = np.asarray(jax.jit(jax.vmap(VMF.sample))(params, keys)).reshape(3, n, 3)
    np.testing.assert_allclose(np.linalg.norm(draws, axis=-1), 1.0, atol=1e-12)
    for j, (mu, kappa) in enumerate(zip(mus, kappas)):
        # E[x] = A_3(κ) μ, within 5 standard errors per coordinate.
        expected = float(bessel_ratio(0.5, kappa)) * mu
        se = draws[j].std(axis=0) / np.sqrt(n)
        assert np.all(np.abs(draws[j].mean(axis=0) - expected) < 5 * se), j
    # On S², w = μᵀx has CDF (e^(κw) − e^(−κ)) / (e^κ − e^(−κ)) (uniform for κ = 0).
    kappa = kappas[1]
    w = draws[1] @ mus[1]
    cdf = lambda t: np.expm1(kappa * (t + 1)) / np.expm1(2 * kappa)
    assert stats.kstest(w, cdf).pvalue > 1e-3
    assert stats.kstest(draws[0] @ mus[0], stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_zero_norm_row_rejected_by_name_before_compilation(monkeypatch):
    x = _unit(np.random.default_rng(0).normal(size=(20, 3)))
    x[7] = 0.0

    def compiled(*args):
        raise AssertionError("the EM program was reached")

    monkeypatch.setattr(fitting, "_start_restarts", compiled)
    with pytest.raises(ValueError, match=r"row 7 of `x` has norm 0\.0"):
        mx.fit(x, VMF, 2, key=jax.random.key(0))
    x[7] = [0.0, 0.0, 1.1]
    with pytest.raises(ValueError, match=r"row 7 of `x` has norm 1\.1"):
        VMF.check_data(x)
    with pytest.raises(ValueError, match=r"D ≥ 2"):
        VMF.check_data(np.ones((4, 1)))


def test_configuration_and_sizes():
    assert VMF.n_free_parameters(3, 4) == 12
    assert VMF == VonMisesFisher() and hash(VMF) == hash(VonMisesFisher())
    with pytest.raises(ValueError, match="max_concentration"):
        VonMisesFisher(max_concentration=0.0)
    with pytest.raises(TypeError, match="max_concentration"):
        VonMisesFisher(max_concentration="big")
    with pytest.raises(ValueError, match="row 1 of `mean_directions`"):
        VMF.make_params([[1.0, 0.0], [1.0, 1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="concentrations"):
        VMF.make_params([[1.0, 0.0]], [-1.0])
