"""A researcher's own family: the mistakes people make are caught, by check_family or by fit, naming the cause.

The families here are written the way docs/custom-family.md teaches: a
Rayleigh and a negative binomial (r known) in exponential-family form, a
Laplace through GradientFamily. Each deliberate mistake is one edit of a
correct family; the correct one passes the same check.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import gammaln
from scipy import optimize, stats

import mixtures as mx
from mixtures.testing import check_family
from tests.families import RayleighForm
from tests.helpers import recording_compilations


@dataclasses.dataclass(frozen=True)
class Rayleigh(RayleighForm):
    def check_data(self, x):
        if np.any(x <= 0):
            raise ValueError("column 0 of `x` must be positive")


@dataclasses.dataclass(frozen=True)
class RayleighWithoutBase(Rayleigh):
    def log_base_measure(self, x):  # log h(x) = 0: forgot log x
        return jnp.zeros((), x.dtype)


@dataclasses.dataclass(frozen=True)
class RayleighWrongPartition(Rayleigh):
    def log_partition(self, natural):  # A(η) off by log 2
        return super().log_partition(natural) + jnp.log(2.0)


@dataclasses.dataclass(frozen=True)
class RayleighWithoutInitialNatural(Rayleigh):
    initial_natural = mx.ExponentialFamily.initial_natural  # η = 0, where A is infinite


@dataclasses.dataclass(frozen=True)
class RayleighScalarStatistic(Rayleigh):
    def sufficient_stats(self, x):
        return jnp.sum(x**2)  # a scalar, not a vector (M,)


@dataclasses.dataclass(frozen=True)
class RayleighWithoutDomain(Rayleigh):
    check_data = mx.Family.check_data


class NegativeBinomialParams(NamedTuple):
    p: jax.Array


@dataclasses.dataclass(frozen=True)
class NegativeBinomial(mx.ExponentialFamily):
    r: float = 3.0
    support = "integer"

    def sufficient_stats(self, x):
        return x

    def log_base_measure(self, x):
        return jnp.sum(gammaln(x + self.r) - gammaln(x + 1.0) - gammaln(self.r))

    def log_partition(self, natural):
        return -self.r * jnp.sum(jnp.log1p(-jnp.exp(natural)))

    def to_natural(self, params):
        return jnp.log(params.p)

    def from_natural(self, natural):
        return NegativeBinomialParams(jnp.exp(natural))

    def initial_natural(self, mean):
        return -jnp.ones_like(mean)

    def sample(self, params, key):
        k_rate, k_count = jax.random.split(key)
        rate = jax.random.gamma(k_rate, self.r, params.p.shape, params.p.dtype) * params.p / (1.0 - params.p)
        return jax.random.poisson(k_count, rate, params.p.shape).astype(params.p.dtype)

    def n_features(self, params):
        return params.p.shape[-1]

    def n_free_parameters(self, n_components, n_features):
        return n_components * n_features

    def check_data(self, x):
        if np.any(x < 0) or np.any(x != np.round(x)):
            raise ValueError("column 0 of `x` must hold counts")


@dataclasses.dataclass(frozen=True)
class NegativeBinomialWithoutGammaTerm(NegativeBinomial):
    def log_base_measure(self, x):  # missing −log Γ(r)
        return jnp.sum(gammaln(x + self.r) - gammaln(x + 1.0))


class LaplaceParams(NamedTuple):
    locations: jax.Array
    scales: jax.Array


@dataclasses.dataclass(frozen=True)
class Laplace(mx.GradientFamily):
    def log_prob(self, params, x):
        return jnp.sum(-jnp.log(2.0 * params.scales) - jnp.abs(x - params.locations) / params.scales)

    def to_unconstrained(self, params):
        return params.locations, jnp.log(params.scales)

    def from_unconstrained(self, u):
        return LaplaceParams(u[0], jnp.exp(u[1]))

    def init_params(self, points, x):
        spread = jnp.mean(jnp.abs(x - jnp.median(x, axis=0, keepdims=True)), axis=0)
        return LaplaceParams(points, jnp.broadcast_to(spread, points.shape))

    def sample(self, params, key):
        noise = jax.random.laplace(key, params.locations.shape, params.locations.dtype)
        return params.locations + params.scales * noise

    def n_features(self, params):
        return params.locations.shape[-1]

    def n_free_parameters(self, n_components, n_features):
        return 2 * n_components * n_features


@dataclasses.dataclass(frozen=True)
class LaplaceThatNeverLearns(Laplace):
    def log_prob(self, params, x):
        return super().log_prob(jax.lax.stop_gradient(params), x)


RNG = np.random.default_rng(0)
RAYLEIGH_X = RNG.rayleigh(np.repeat([1.0, 4.0], 150))[:, None]
COUNTS = RNG.negative_binomial(3, np.repeat([0.3, 0.8], 150))[:, None].astype(float)
LAPLACE_X = np.concatenate([RNG.laplace(-2.0, 1.0, 180), RNG.laplace(3.0, 0.5, 120)])[:, None]


# -- normalisation: a wrong constant in log h, A(η) or a Γ-term ---------------------------------


@pytest.mark.parametrize(
    "family, x, mass",
    [
        (RayleighWithoutBase(), RAYLEIGH_X, None),  # ∫ exp(−x²/2σ²)/σ² dx = √(π/2)/σ
        (RayleighWrongPartition(), RAYLEIGH_X, 0.5),
        (NegativeBinomialWithoutGammaTerm(), COUNTS, 2.0),  # Γ(3) = 2
    ],
    ids=["log_h", "log_partition", "gamma_term"],
)
def test_a_wrong_normalising_constant_is_caught(family, x, mass):
    with pytest.raises(AssertionError, match="normalisation: component 0: the density (integrates|sums) to") as err:
        check_family(family, x, key=jax.random.key(0), only=["normalisation"], n_samples=4000)
    if mass is not None:
        assert f"to {mass:g} " in str(err.value)
    else:  # the mass of the first component is √(π/2)/σ₀ for its fitted σ₀
        assert "log_prob is off by a constant" in str(err.value)


@pytest.mark.parametrize("family, x", [(Rayleigh(), RAYLEIGH_X), (NegativeBinomial(), COUNTS)], ids=["rayleigh", "negbin"])
def test_correct_families_integrate_to_one(family, x):
    report = check_family(family, x, key=jax.random.key(0), only=["normalisation"], n_samples=4000)["normalisation"]
    masses = [v for name, v in report.items() if name.endswith("mass")]
    assert len(masses) == 2 and np.allclose(masses, 1.0, atol=1e-9)
    assert all(v < 2.3 for name, v in report.items() if name.endswith("ks"))


def test_a_sampler_that_disagrees_with_the_density_is_caught():
    @dataclasses.dataclass(frozen=True)
    class WideRayleigh(Rayleigh):
        def sample(self, params, key):
            return 1.05 * super().sample(params, key)

    with pytest.raises(AssertionError, match="Kolmogorov–Smirnov"):
        check_family(WideRayleigh(), RAYLEIGH_X, key=jax.random.key(0), only=["normalisation"], n_samples=20000)


def test_a_continuous_density_declared_on_integers_is_hinted():
    @dataclasses.dataclass(frozen=True)
    class CountsAsReals(NegativeBinomial):
        support = "real"

    with pytest.raises(AssertionError, match="a discrete family sets support = 'integer'"):
        check_family(CountsAsReals(), COUNTS, key=jax.random.key(0), only=["normalisation"], n_samples=4000)


def test_the_wrong_constant_changes_model_selection_only_when_uncaught():
    """The constant is invisible to EM: the wrong family fits the same scales, but its log-likelihood moves by N log 2."""
    good = mx.fit(RAYLEIGH_X, Rayleigh(), 2, key=jax.random.key(0), tol=1e-8)
    bad = mx.fit(RAYLEIGH_X, RayleighWrongPartition(), 2, key=jax.random.key(0), tol=1e-8)
    np.testing.assert_allclose(np.sort(bad.mixture.params.scales[:, 0]), np.sort(good.mixture.params.scales[:, 0]), rtol=1e-8)
    np.testing.assert_allclose(float(good.log_likelihood) - float(bad.log_likelihood), np.log(2.0), rtol=1e-9)


# -- a gradient M-step that learns, and reaches the maximum ------------------------------------------


def test_a_gradient_family_that_never_learns_is_refused():
    with pytest.raises(AssertionError, match="m_step_improves: from perturbed parameters the M-step raises"):
        check_family(LaplaceThatNeverLearns(), LAPLACE_X, key=jax.random.key(0), only=["m_step_improves"])


def test_a_gradient_family_blind_to_one_field_is_refused():
    @dataclasses.dataclass(frozen=True)
    class LaplaceBlindToScale(Laplace):
        def log_prob(self, params, x):
            blind = params._replace(scales=jax.lax.stop_gradient(params.scales))
            return super().log_prob(blind, x)

    with pytest.raises(AssertionError, match="with only field 1 of the unconstrained parameters perturbed"):
        check_family(LaplaceBlindToScale(), LAPLACE_X, key=jax.random.key(0), only=["m_step_improves"])


def test_the_laplace_m_step_gains_and_matches_a_long_run():
    report = check_family(Laplace(), LAPLACE_X, key=jax.random.key(0), only=["m_step_improves", "normalisation"])
    assert report["m_step_improves"]["total_gain"] > 1.0
    assert report["m_step_improves"]["shortfall_against_a_long_run"] <= 1e-9


def test_float32_gradient_family_passes_the_restart_check_within_float32_resolution():
    """Vmapped and looped float32 fits settle within float32's resolution of a maximum, log-likelihoods within 1e-3."""
    report = check_family(Laplace(), LAPLACE_X.astype(np.float32), key=jax.random.key(0), only=["vmapped_restarts"])
    measured = report["vmapped_restarts"]
    assert measured["parameters"] < 1e-2 and measured["log-likelihoods"] < 1e-3


def exact_laplace_em(x, weights, locations, scales, n_iter):
    """EM for a 1-D Laplace mixture with the exact M-step: weighted median and mean absolute deviation."""
    order = np.argsort(x)
    for _ in range(n_iter):
        logp = np.log(weights) - np.log(2 * scales) - np.abs(x[:, None] - locations) / scales
        top = logp.max(axis=1, keepdims=True)
        resp = np.exp(logp - top)
        total = resp.sum(axis=1, keepdims=True)
        log_lik = float(np.mean(top[:, 0] + np.log(total[:, 0])))
        resp /= total
        weights = resp.mean(axis=0)
        for k in range(len(locations)):
            cumulative = np.cumsum(resp[order, k])
            locations[k] = x[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]
            scales[k] = np.sum(resp[:, k] * np.abs(x - locations[k])) / np.sum(resp[:, k])
    return log_lik, weights, locations, scales


def test_laplace_fit_reaches_the_exact_em_optimum():
    result = mx.fit(LAPLACE_X, Laplace(), 2, key=jax.random.key(0), tol=1e-10, max_iter=500)
    m = result.mixture
    exact, *_ = exact_laplace_em(
        LAPLACE_X[:, 0], np.asarray(m.weights), np.asarray(m.params.locations[:, 0]).copy(),
        np.asarray(m.params.scales[:, 0]).copy(), n_iter=3000,
    )
    assert bool(result.converged)
    assert abs(float(result.log_likelihood) - exact) <= 1e-8, float(result.log_likelihood) - exact


def test_student_t_m_step_is_the_maximiser_of_q():
    """One M-step from a rough mixture equals SciPy's maximiser of each component's Q to 1e-9 (relative)."""
    dof = 4.0
    x = np.concatenate([RNG.standard_t(dof, (150, 2)) - 3.0, RNG.standard_t(dof, (150, 2)) + 3.0])
    family = mx.StudentT(dof=dof)
    previous = mx.Mixture(
        jnp.array([0.5, 0.5]), family.make_params([[-2.0, -2.5], [2.0, 3.5]], [[2.0, 0.7], [0.5, 1.5]]), family
    )
    new, _ = mx.em_step(previous, x)
    resp = np.asarray(previous.responsibilities(x))

    def q(theta, k):
        loc, log_scale = theta[:2], theta[2:]
        return -np.sum(resp[:, k, None] * stats.t.logpdf(x, dof, loc, np.exp(log_scale)))

    for k in range(2):
        start = np.r_[np.asarray(previous.params.locations[k]), np.log(np.asarray(previous.params.scales[k]))]
        best = optimize.minimize(q, start, args=(k,), method="BFGS", options={"gtol": 1e-10})
        ours = np.r_[np.asarray(new.params.locations[k]), np.log(np.asarray(new.params.scales[k]))]
        assert -q(ours, k) >= -best.fun - 1e-9 * abs(best.fun), (-q(ours, k), -best.fun)
        np.testing.assert_allclose(ours, best.x, atol=1e-5)


# -- mistakes refused by fit before compiling, naming the cause ---------------------------------


def _raises_before_compiling(error, match, call):
    with recording_compilations() as compiled, pytest.raises(error, match=match):
        call()
    assert not compiled, f"{len(compiled)} compilation(s) before the error"


def test_forgotten_initial_natural_is_named():
    with pytest.raises(ValueError, match=r"log_partition is inf at initial_natural\(...\) = \[0.0\].*overrides initial_natural"):
        mx.fit(RAYLEIGH_X, RayleighWithoutInitialNatural(), 2, key=jax.random.key(0))


def test_scalar_sufficient_statistic_is_named():
    _raises_before_compiling(
        TypeError, r"sufficient_stats must return a flat vector T\(x\) of shape \(M,\).*returns shape \(\)",
        lambda: mx.fit(RAYLEIGH_X, RayleighScalarStatistic(), 2, key=jax.random.key(0)),
    )


def test_data_outside_an_undeclared_domain_is_refused():
    bad = np.r_[RAYLEIGH_X[:5], [[-1.0]], RAYLEIGH_X[5:10]]
    with pytest.raises(ValueError, match=r"row 5 of `x` \(\[-1.0\]\) gives a non-finite T\(x\) or log h\(x\).*check_data"):
        mx.fit(bad, RayleighWithoutDomain(), 2, key=jax.random.key(0))

    @dataclasses.dataclass(frozen=True)
    class LaplaceOnPositives(Laplace):
        def log_prob(self, params, x):  # a density only for x ≥ 0, no check_data
            return super().log_prob(params, jnp.sqrt(x))

    with pytest.raises(ValueError, match=r"row 5 of `x` \(\[-1.0\]\) has a NaN log-density under LaplaceOnPositives"):
        mx.fit(bad, LaplaceOnPositives(), 2, key=jax.random.key(0))


def test_warm_starts_outside_the_parameter_space_are_refused():
    start = mx.Mixture(jnp.array([0.5, 0.5]), NegativeBinomialParams(jnp.array([[0.5], [1.5]])), NegativeBinomial())
    with pytest.raises(ValueError, match=r"component 1 maps to natural parameters η = \[0.405.*A\(η\) = nan"):
        mx.fit(COUNTS, NegativeBinomial(), 2, key=None, init=start)
    start = mx.Mixture(jnp.array([0.5, 0.5]), LaplaceParams(jnp.array([[0.0], [1.0]]), jnp.array([[1.0], [-1.0]])), Laplace())
    with pytest.raises(ValueError, match=r"parameter space of Laplace\(.*component 1's parameters have no finite unconstrained"):
        mx.fit(LAPLACE_X, Laplace(), 2, key=None, init=start)

    @dataclasses.dataclass(frozen=True)
    class LaplaceWithIdentityMaps(Laplace):  # maps that cannot tell a negative scale
        def to_unconstrained(self, params):
            return params.locations, params.scales

        def from_unconstrained(self, u):
            return LaplaceParams(u[0], u[1])

    start = mx.Mixture(start.weights, start.params, LaplaceWithIdentityMaps())
    with pytest.raises(ValueError, match=r"parameter space of .*LaplaceWithIdentityMaps.*component 1 gives NaN log-densities"):
        mx.fit(LAPLACE_X, LaplaceWithIdentityMaps(), 2, key=None, init=start)
