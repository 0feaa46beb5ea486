"""Exponential and Gamma families against NumPy/SciPy references.

Each family's fits share one data shape, K and ``max_iter``, so its EM program
compiles once; every other check is one jitted function per family.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.families.exponential import Exponential
from mixtures._src.families.gamma import Gamma
from tests.helpers import assert_monotone, assert_recovered

N_FIT = 3000
MAX_ITER = 40
N_SAMPLE = 20_000
N_SE = 5.0  # tolerance, in standard errors


def _gamma_variances(leaves):
    """Per-observation asymptotic variances of the MLEs of α and β (inverse Fisher information)."""
    a, b = leaves["shapes"], leaves["rates"]
    trigamma = special.polygamma(1, a)
    denominator = a * trigamma - 1.0
    return {"shapes": a / denominator, "rates": trigamma * b**2 / denominator}


CASES = {
    "exponential": dict(
        family=Exponential(),
        weights=np.array([0.4, 0.6]),
        leaves={"rates": np.array([[0.5, 10.0, 1.0, 6.0], [10.0, 0.5, 8.0, 0.8]])},
        draw=lambda rng, p, n: rng.exponential(1.0 / p["rates"], size=(n, p["rates"].shape[0])),
        logpdf=lambda x, p: stats.expon.logpdf(x, scale=1.0 / p["rates"][None]).sum(axis=1),
        variance=lambda leaves: {"rates": leaves["rates"] ** 2},  # of one observation: n × Var(MLE)
        moments=lambda p: (1.0 / p["rates"], 1.0 / p["rates"] ** 2, 9.0 / p["rates"] ** 4),
    ),
    "gamma": dict(
        family=Gamma(),
        weights=np.array([0.45, 0.55]),
        leaves={
            "shapes": np.array([[2.0, 8.0], [9.0, 3.0]]),
            "rates": np.array([[2.0, 4.0], [1.0, 0.25]]),
        },
        draw=lambda rng, p, n: rng.gamma(p["shapes"], 1.0 / p["rates"], size=(n, p["shapes"].shape[0])),
        logpdf=lambda x, p: stats.gamma.logpdf(x, p["shapes"][None], scale=1 / p["rates"][None]).sum(axis=1),
        variance=_gamma_variances,
        # mean α/β, variance α/β², fourth central moment 3α(α + 2)/β⁴
        moments=lambda p: (
            p["shapes"] / p["rates"],
            p["shapes"] / p["rates"] ** 2,
            3 * p["shapes"] * (p["shapes"] + 2) / p["rates"] ** 4,
        ),
    ),
}
NAMES = list(CASES)


def _params(case):
    return case["family"].make_params(*case["leaves"].values())


def _component(leaves, k):
    return {name: value[k] for name, value in leaves.items()}


def _simulate(case, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(len(case["weights"]), size=n, p=case["weights"])
    x = np.empty((n, next(iter(case["leaves"].values())).shape[1]))
    for k in range(len(case["weights"])):
        x[z == k] = case["draw"](rng, _component(case["leaves"], k), int(np.sum(z == k)))
    return x, z


@pytest.fixture(scope="module")
def fits():
    """name → (x, [two fits with keys 0 and 1]), tol=0 and MAX_ITER iterations, computed once."""
    cache = {}

    def get(name):
        if name not in cache:
            case = CASES[name]
            x, _ = _simulate(case, N_FIT, seed=NAMES.index(name))
            k = len(case["weights"])
            cache[name] = (x, [
                mx.fit(x, case["family"], k, key=jax.random.key(seed), tol=0.0, max_iter=MAX_ITER)
                for seed in (0, 1)
            ])
        return cache[name]

    return get


# -- 1. closed form equals the Newton solve ------------------------------------

def _interior(name, rng, n):
    """(means (n, M), previous parameters): mean parameters of random interior parameters, by SciPy."""
    if name == "exponential":
        means = rng.uniform(0.1, 10.0, size=(n, 3))
        return means, Exponential().make_params(np.ones((n, 3)))
    shapes, rates = rng.uniform(0.3, 30.0, size=(n, 3)), rng.uniform(0.1, 10.0, size=(n, 3))
    means = np.concatenate([special.digamma(shapes) - np.log(rates), shapes / rates], axis=1)
    return means, Gamma().make_params(np.ones((n, 3)), np.ones((n, 3)))


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_equals_newton(name):
    family = CASES[name]["family"]
    means, previous = _interior(name, np.random.default_rng(7), 6)
    newton = jax.vmap(lambda m, p: ExponentialFamily.params_from_mean(family, m, p))
    both = jax.jit(lambda m, p: (jax.vmap(family.params_from_mean)(m, p), newton(m, p)))
    closed, solved = both(jnp.asarray(means), previous)
    for got, want in zip(closed, solved):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_gamma_closed_form_float32():
    """float32 statistics give α to ~1e-4 on both sides of the series switch at α = 10.

    (For larger α the float32 rounding of E[log x] itself limits the accuracy.)
    """
    shapes = np.array([0.05, 0.7, 3.0, 9.9, 10.1, 80.0, 250.0])
    means = np.concatenate([special.digamma(shapes) - np.log(2.0), shapes / 2.0])
    got = jax.jit(Gamma().params_from_mean)(jnp.asarray(means, jnp.float32), None)
    assert got.shapes.dtype == jnp.float32
    np.testing.assert_allclose(got.shapes, shapes, rtol=1e-4)
    np.testing.assert_allclose(got.rates, np.full(7, 2.0), rtol=1e-4)


# -- 2. densities ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_log_prob_matches_scipy(name):
    case = CASES[name]
    family, params = case["family"], _params(case)
    x, _ = _simulate(case, 40, seed=3)
    k = len(case["weights"])
    want = np.stack([case["logpdf"](x, _component(case["leaves"], j)) for j in range(k)], axis=1)
    looped = jax.vmap(jax.vmap(family.log_prob, in_axes=(0, None)), in_axes=(None, 0))
    batched, looped = jax.jit(lambda p, x: (family.log_prob_components(p, x), looped(p, x)))(params, x)
    np.testing.assert_allclose(batched, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(looped, batched, rtol=1e-12, atol=1e-12)


# -- 3. recovery and 4. monotone history ------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_fit_recovers_parameters(name, fits):
    case = CASES[name]
    best = max(fits(name)[1], key=lambda r: float(r.log_likelihood))
    truth = case["leaves"]
    assert_recovered(
        best, truth, case["weights"], case["variance"](truth), N_FIT, N_SE,
        distance=lambda a, b: (np.log(a) - np.log(b)) ** 2,  # match components on the log scale
    )


@pytest.mark.parametrize("name", NAMES)
def test_log_likelihood_never_decreases(name, fits):
    for result in fits(name)[1]:
        assert_monotone(result, MAX_ITER)


# -- 5. sampling -------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_sample_moments(name):
    case = CASES[name]
    family, params = case["family"], _params(case)
    one = jax.tree.map(lambda a: a[1], params)
    many = jax.vmap(family.sample, in_axes=(None, 0))
    draws = jax.jit(lambda p, key: many(p, jax.random.split(key, N_SAMPLE)))(one, jax.random.key(5))
    d = params[0].shape[1]
    assert draws.dtype == params[0].dtype and draws.shape == (N_SAMPLE, d)
    draws = np.asarray(draws)
    family.check_data(draws)
    mean, var, mu4 = case["moments"](_component(case["leaves"], 1))
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - mean), N_SE * np.sqrt(var / N_SAMPLE))
    np.testing.assert_array_less(np.abs(draws.var(axis=0) - var), N_SE * np.sqrt((mu4 - var**2) / N_SAMPLE))


# -- boundary handling ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_constant_column_stays_finite(name, fits):
    """Column 0 constant: a Gamma shape would be +∞ there; it is capped at ``max_shape``."""
    case = CASES[name]
    family = case["family"]
    x = fits(name)[0].copy()  # same shape, K and max_iter as the cached fits: no new compilation
    x[:, 0] = 2.0
    result = mx.fit(x, family, len(case["weights"]), key=jax.random.key(0), tol=0.0, max_iter=MAX_ITER)
    assert np.isfinite(float(result.log_likelihood)) and np.all(np.isfinite(result.history))
    params = result.mixture.params
    if name == "gamma":
        np.testing.assert_array_equal(params.shapes[:, 0], family.max_shape)
        np.testing.assert_allclose(params.rates[:, 0], family.max_shape / 2.0, rtol=1e-12)
    else:
        np.testing.assert_allclose(params.rates[:, 0], 0.5, rtol=1e-12)


# -- 6. domain checks ----------------------------------------------------------------

BAD = [
    ("exponential", [[1.0, 2.0], [3.0, 0.0]], 1, 1, r"strictly positive numbers; row 1 has 0\.0"),
    ("exponential", [[1.0, 2.0], [3.0, 4.0], [-0.5, 1.0]], 0, 2, r"row 2 has -0\.5"),
    ("gamma", [[1.0, 2.0, 0.5], [3.0, 1.0, 0.0]], 2, 1, r"strictly positive numbers; row 1 has 0\.0"),
    ("gamma", [[1.0, -2.0], [3.0, 1.0]], 1, 0, r"row 0 has -2\.0"),
]


@pytest.mark.parametrize(("name", "x", "column", "row", "detail"), BAD)
def test_out_of_domain_data_is_rejected_before_compiling(name, x, column, row, detail, monkeypatch):
    def not_reached(*args, **kwargs):
        raise AssertionError("the compiled fit ran before the data were checked")

    monkeypatch.setattr(fitting, "_start_restarts", not_reached)
    with pytest.raises(ValueError, match=rf"^column {column} of `x` must hold .*{detail}"):
        mx.fit(np.array(x), CASES[name]["family"], 1, key=jax.random.key(0))


@pytest.mark.parametrize("name", NAMES)
def test_check_data_rejects_non_finite_and_accepts_positive(name):
    family = CASES[name]["family"]
    family.check_data(np.array([[0.1, 3.0], [1e-300, 7.0]]))
    with pytest.raises(ValueError, match=r"column 1 of `x`.*row 0 has nan"):
        family.check_data(np.array([[1.0, np.nan], [1.0, 1.0]]))


def test_bad_configuration_and_counts():
    with pytest.raises(ValueError, match="max_shape"):
        Gamma(max_shape=-1.0)
    with pytest.raises(ValueError, match=r"`shapes` must be finite and positive"):
        Gamma().make_params([[0.0]], [[1.0]])
    with pytest.raises(ValueError, match=r"`rates` must be finite and positive"):
        Exponential().make_params([[-1.0]])
    assert Exponential().n_free_parameters(3, 4) == 12
    assert Gamma().n_free_parameters(3, 4) == 24
