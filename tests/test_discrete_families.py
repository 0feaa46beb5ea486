"""Poisson, Bernoulli and Categorical families against NumPy/SciPy references.

Each family's fits share one data shape, K and ``max_iter``, so its EM program
compiles once; every other check is one jitted function per family.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.families.bernoulli import Bernoulli
from mixtures._src.families.categorical import Categorical
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.families.poisson import Poisson
from tests.helpers import assert_monotone, assert_recovered

N_FIT = 3000
MAX_ITER = 40
N_SAMPLE = 20_000
N_SE = 5.0  # tolerance, in standard errors
SIZES = (3, 4, 2)  # categories per feature of the Categorical case


# -- the three cases: true parameters, NumPy simulation, SciPy densities ---------

def _blocks(probs):
    """Concatenated per-feature probabilities → one array per feature."""
    return np.split(probs, np.cumsum(SIZES)[:-1])


def _categorical_logpmf(x, probs):
    """Σⱼ log p(xⱼ), with SciPy's one-trial multinomial per feature."""
    return sum(
        stats.multinomial.logpmf(np.eye(len(p))[x[:, j].astype(int)], 1, p)
        for j, p in enumerate(_blocks(probs))
    )


CASES = {
    "poisson": dict(
        family=Poisson(),
        weights=np.array([0.3, 0.3, 0.4]),
        leaves={"rates": np.array([[1.0, 12.0], [10.0, 2.0], [15.0, 15.0]])},
        draw=lambda rng, p: rng.poisson(p["rates"]).astype(float),
        logpmf=lambda x, p: stats.poisson.logpmf(x, p["rates"][None]).sum(axis=1),
        variance=lambda p: {"rates": p["rates"]},  # of one observation: n × Var(MLE)
    ),
    "bernoulli": dict(
        family=Bernoulli(),
        weights=np.array([0.35, 0.65]),
        leaves={"probs": np.array([
            [0.9, 0.1, 0.8, 0.2, 0.85, 0.3],
            [0.15, 0.85, 0.25, 0.9, 0.1, 0.6],
        ])},
        draw=lambda rng, p: (rng.random(p["probs"].shape) < p["probs"]).astype(float),
        logpmf=lambda x, p: stats.bernoulli.logpmf(x, p["probs"][None]).sum(axis=1),
        variance=lambda p: {"probs": p["probs"] * (1 - p["probs"])},
    ),
    "categorical": dict(
        family=Categorical(SIZES),
        weights=np.array([0.45, 0.55]),
        leaves={"probs": np.array([
            [0.7, 0.2, 0.1, 0.6, 0.2, 0.1, 0.1, 0.9, 0.1],
            [0.1, 0.2, 0.7, 0.05, 0.15, 0.2, 0.6, 0.2, 0.8],
        ])},
        draw=lambda rng, p: np.array([rng.choice(len(b), p=b) for b in _blocks(p["probs"])], float),
        logpmf=lambda x, p: _categorical_logpmf(x, p["probs"]),
        variance=lambda p: {"probs": p["probs"] * (1 - p["probs"])},
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
    return np.stack([case["draw"](rng, _component(case["leaves"], k)) for k in z]), z


def _frequencies(x):
    """Relative frequencies of every category of every feature, concatenated (ΣC,)."""
    counts = [np.bincount(x[:, j].astype(int), minlength=c) for j, c in enumerate(SIZES)]
    return np.concatenate(counts) / len(x)


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
                # K-means seeding measures distance between category codes, which means nothing
                # for categorical data: seed at random rows instead.
                mx.fit(x, case["family"], k, key=jax.random.key(seed), tol=0.0, max_iter=MAX_ITER,
                       init="random_from_data")
                for seed in (0, 1)
            ])
        return cache[name]

    return get


# -- 1. closed form equals the Newton solve ------------------------------------

def _interior_means(name, rng, n):
    if name == "poisson":
        return rng.uniform(0.2, 20.0, size=(n, 4))
    if name == "bernoulli":
        return rng.uniform(0.05, 0.95, size=(n, 4))
    probs = [rng.dirichlet(np.full(c, 2.0), size=n) for c in SIZES]
    return np.concatenate([p[:, 1:] for p in probs], axis=1)  # category 0 is the reference


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_equals_newton(name):
    family = CASES[name]["family"]
    newton = jax.vmap(lambda m, p: ExponentialFamily.params_from_mean(family, m, p))

    @jax.jit
    def both(means):
        previous = jax.vmap(family.from_natural)(jnp.full_like(means, 0.1))  # away from the answer
        return jax.vmap(family.params_from_mean)(means, previous), newton(means, previous)

    closed, solved = both(jnp.asarray(_interior_means(name, np.random.default_rng(7), 5)))
    for got, want in zip(closed, solved):
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_m_step_is_the_plain_mle(name):
    """accumulate + m_step with 0/1 responsibilities give the MLE of the selected rows."""
    case = CASES[name]
    family = case["family"]
    x, _ = _simulate(case, 200, seed=11)
    resp = (np.arange(200) < 120).astype(float)[:, None]
    params = jax.tree.map(lambda a: a[:1], _params(case))
    step = jax.jit(lambda p, x, r: family.m_step(family.accumulate(p, x, r), jnp.sum(r, axis=0), p))
    want = _frequencies(x[:120]) if name == "categorical" else x[:120].mean(axis=0)
    np.testing.assert_allclose(step(params, x, resp)[0][0], want, rtol=1e-12)


# -- 2. densities ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_log_prob_matches_scipy(name):
    case = CASES[name]
    family, params = case["family"], _params(case)
    x, _ = _simulate(case, 40, seed=3)
    k = len(case["weights"])
    want = np.stack([case["logpmf"](x, _component(case["leaves"], j)) for j in range(k)], axis=1)
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
    assert_recovered(best, truth, case["weights"], case["variance"](truth), N_FIT, N_SE)


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
    n_columns = len(SIZES) if name == "categorical" else one[0].shape[0]
    assert draws.dtype == params[0].dtype and draws.shape == (N_SAMPLE, n_columns)
    draws = np.asarray(draws)
    family.check_data(draws)
    p = case["leaves"][next(iter(case["leaves"]))][1]
    if name == "poisson":  # mean λ; variance λ, its estimate's variance (μ₄ − σ⁴)/n = (λ + 2λ²)/n
        np.testing.assert_array_less(np.abs(draws.mean(axis=0) - p), N_SE * np.sqrt(p / N_SAMPLE))
        np.testing.assert_array_less(np.abs(draws.var(axis=0) - p), N_SE * np.sqrt((p + 2 * p**2) / N_SAMPLE))
    else:  # frequencies of ones, or of every category
        freq = draws.mean(axis=0) if name == "bernoulli" else _frequencies(draws)
        np.testing.assert_array_less(np.abs(freq - p), N_SE * np.sqrt(p * (1 - p) / N_SAMPLE))


# -- boundary handling ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_all_zero_column_fits_at_the_clip(name, fits):
    """Column 0 all zero: the MLE is on the boundary (η = −∞); the fit stays finite at the clip."""
    case = CASES[name]
    family = case["family"]
    x = fits(name)[0].copy()  # same shape, K and max_iter as the cached fits: no new compilation
    x[:, 0] = 0.0
    result = mx.fit(x, family, len(case["weights"]), key=jax.random.key(0), tol=0.0, max_iter=MAX_ITER)
    assert np.isfinite(float(result.log_likelihood)) and np.all(np.isfinite(result.history))
    leaf = np.asarray(result.mixture.params[0])
    assert np.all(np.isfinite(leaf))
    if name == "categorical":  # categories 1 and 2 of feature 0 unseen: floored, then renormalised
        floor = family.min_prob / (1 + 2 * family.min_prob)
        np.testing.assert_allclose(leaf[:, :3], [[1 - 2 * floor, floor, floor]] * 2, rtol=1e-12)
    else:
        clip = family.min_rate if name == "poisson" else family.min_prob
        np.testing.assert_array_equal(leaf[:, 0], clip)


def test_clipping_of_closed_forms():
    np.testing.assert_array_equal(Poisson(min_rate=1e-3).params_from_mean(jnp.array([0.0, 3.0]), None).rates,
                                  [1e-3, 3.0])
    probs = Bernoulli(min_prob=1e-4).params_from_mean(jnp.array([0.0, 1.0, 0.5]), None).probs
    np.testing.assert_allclose(probs, [1e-4, 1 - 1e-4, 0.5])
    cat = Categorical((3, 2), min_prob=1e-4)
    probs = cat.params_from_mean(jnp.array([0.0, 1.0, 0.0]), None).probs  # feature 0: categories 0, 1 unseen
    want = np.array([1e-4, 1e-4, 1.0, 1.0, 1e-4]) / np.repeat([1.0002, 1.0001], [3, 2])
    np.testing.assert_allclose(probs, want)


# -- 6. domain checks ----------------------------------------------------------------

BAD = [
    ("poisson", [[1.0, 2.0], [3.0, 4.0], [2.0, -1.0]], 1, 2, r"non-negative integer counts; row 2 has -1\.0"),
    ("poisson", [[1.0, 2.0], [0.5, 4.0], [2.0, 1.0]], 0, 1, r"row 1 has 0\.5"),
    ("bernoulli", [[1.0, 0.0, 1.0], [0.0, 1.0, 2.0]], 2, 1, r"binary values \(0 or 1\); row 1 has 2\.0"),
    ("categorical", [[0.0, 3.0, 1.0], [2.0, 4.0, 0.0]], 1, 1, r"codes 0\.\.3; row 1 has 4\.0"),
    ("categorical", [[0.0, 3.0, 1.0], [3.0, 0.0, 0.0]], 0, 1, r"codes 0\.\.2; row 1 has 3\.0"),
    ("categorical", [[0.0, 1.5, 1.0], [1.0, 0.0, 0.0]], 1, 0, r"row 0 has 1\.5"),
]


@pytest.mark.parametrize(("name", "x", "column", "row", "detail"), BAD)
def test_out_of_domain_data_is_rejected_before_compiling(name, x, column, row, detail, monkeypatch):
    def not_reached(*args, **kwargs):
        raise AssertionError("the compiled fit ran before the data were checked")

    monkeypatch.setattr(fitting, "_start_restarts", not_reached)
    with pytest.raises(ValueError, match=rf"^column {column} of `x` must hold .*{detail}"):
        mx.fit(np.array(x), CASES[name]["family"], 1, key=jax.random.key(0))


def test_categorical_checks_the_number_of_columns():
    with pytest.raises(ValueError, match="3 columns"):
        Categorical(SIZES).check_data(np.zeros((4, 2)))
    Categorical(SIZES).check_data(np.array([[2.0, 3.0, 1.0], [0.0, 0.0, 0.0]]))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Categorical(()), ValueError, "at least one feature"),
        (lambda: Categorical((3, 1)), ValueError, r"n_categories\[1\]` must be at least 2"),
        (lambda: Categorical((3, 2.0)), TypeError, r"n_categories\[1\]` must be an integer"),
        (lambda: Categorical(3), TypeError, "tuple of integers"),
        (lambda: Categorical((2, 4), min_prob=0.3), ValueError, "min_prob"),
        (lambda: Categorical((2, 2)).make_params([[0.5, 0.5, 0.5, 0.6]]), ValueError, "sum to one"),
        (lambda: Bernoulli(min_prob=0.5), ValueError, "min_prob"),
        (lambda: Bernoulli().make_params([[0.0, 0.5]]), ValueError, "strictly between 0 and 1"),
        (lambda: Poisson(min_rate=0.0), ValueError, "min_rate"),
        (lambda: Poisson(min_rate="small"), TypeError, "min_rate"),
    ],
)
def test_bad_configuration_is_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_categorical_configuration_is_static_and_hashable():
    assert Categorical([3, 2]) == Categorical((3, 2))
    assert hash(Categorical([3, 2])) == hash(Categorical((3, 2)))


def test_n_free_parameters():
    assert Poisson().n_free_parameters(3, 4) == 12
    assert Bernoulli().n_free_parameters(2, 6) == 12
    assert Categorical(SIZES).n_free_parameters(2, 3) == 2 * (2 + 3 + 1)
    with pytest.raises(ValueError, match="n_features"):
        Categorical(SIZES).n_free_parameters(2, 4)
