"""float32 at scale: 10⁶ rows, clusters far from the origin and of very different scales.

The data are made in float32 once; the float64 fit of the same values (cast
up) from the same warm start is the reference. Tolerances, with what was
measured when this test was written (docs/numerics.md):

* means within 0.01 σ per coordinate (the float32 spacing at 10⁴ is 0.001,
  a hundredth of the smallest σ = 0.1; measured 1.2e-3 σ);
* covariances within 10⁻³ of √(Σᵢᵢ Σⱼⱼ) per entry (measured 4e-6);
* weights within 10⁻⁶ (measured 1.5e-8);
* the final mean log-likelihood within 10⁻⁶ relative, every history entry
  within 10⁻⁵ relative (measured 1.6e-8 and 5.6e-6);
* no NaN, and a history that never falls by more than 10⁻⁶ relative.
"""

import jax
import numpy as np
import pytest

import mixtures as mx

N = 1_000_000
MEANS = np.array([[1e4, -2e4], [1.2e4, -2.1e4], [-3e4, 5e4]])
STDS = np.array([[0.1, 0.3], [100.0, 50.0], [1.0, 2.0]])  # σ spans three orders of magnitude
WEIGHTS = np.array([0.3, 0.5, 0.2])
MAX_ITER = 8


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(0)
    z = rng.choice(3, N, p=WEIGHTS)
    x = (MEANS[z] + rng.standard_normal((N, 2)) * STDS[z]).astype(np.float32)
    family = mx.Gaussian("full")
    covs = np.stack([np.diag((1.5 * s) ** 2) for s in STDS])
    out = {}
    for dtype in (np.float32, np.float64):
        start = mx.Mixture(np.full(3, 1 / 3, dtype), family.make_params((MEANS + 0.5 * STDS).astype(dtype), covs), family)
        out[dtype] = mx.fit(x.astype(dtype), family, 3, key=None, init=start, max_iter=MAX_ITER, tol=0.0)
    return out[np.float32], out[np.float64]


def test_the_fit_runs_in_float32(fits):
    f32, _ = fits
    assert f32.mixture.dtype == np.float32
    assert f32.history.dtype == np.float32 and f32.log_likelihood.dtype == np.float32
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(f32.mixture.params))


def test_float32_parameters_match_the_float64_fit(fits):
    f32, f64 = fits
    means64 = np.asarray(f64.mixture.params.means)
    covs64 = np.asarray(f64.mixture.params.covariances)
    sd = np.sqrt(np.diagonal(covs64, axis1=1, axis2=2))
    means32 = np.asarray(f32.mixture.params.means, np.float64)
    covs32 = np.asarray(f32.mixture.params.covariances, np.float64)
    assert np.all(np.isfinite(means32)) and np.all(np.isfinite(covs32))
    assert np.max(np.abs(means32 - means64) / sd) < 1e-2
    assert np.max(np.abs(covs32 - covs64) / (sd[:, :, None] * sd[:, None, :])) < 1e-3
    assert np.max(np.abs(np.asarray(f32.mixture.weights, np.float64) - np.asarray(f64.mixture.weights))) < 1e-6
    # the reference itself recovered the clusters
    np.testing.assert_allclose(sd, STDS, rtol=0.01)
    np.testing.assert_allclose(np.asarray(f64.mixture.weights), WEIGHTS, atol=3e-3)


def test_float32_log_likelihood_and_history(fits):
    f32, f64 = fits
    h32 = np.append(np.asarray(f32.history, np.float64), float(f32.log_likelihood))
    h64 = np.append(np.asarray(f64.history), float(f64.log_likelihood))
    assert int(f32.n_iter) == MAX_ITER and np.all(np.isfinite(h32))
    np.testing.assert_allclose(h32[-1], h64[-1], rtol=1e-6)
    np.testing.assert_allclose(h32, h64, rtol=1e-5)
    assert np.min(np.diff(h32)) >= -1e-6 * np.max(np.abs(h32))


# float32 log-densities of every built-in family over its parameter range, against float64
# on the same (float32-rounded) parameters and rows. The error is bounded by
# ACCURACY · ε₃₂ · max(1, |log p|, s), s the family's sensitivity to the one rounding its
# float32 inputs force (0 for most; see docs/numerics.md): Gamma's βx is rounded, which moves
# log p by |α − βx| ε; a float32 unit vector's norm is 1 only to ε, which moves the von
# Mises–Fisher log p by κ ε.
ACCURACY = 32


def _accuracy_cases():
    g = np.geomspace
    shapes, rates = g(0.05, 1e6, 10)[:, None], g(1e-4, 1e4, 10)[:, None]
    probs = np.array([1e-6, 1e-3, 0.3, 0.5, 0.9, 1 - 1e-3, 1 - 1e-6])[:, None]
    means = np.array([[0.0, 0.0], [1e4, -3e4], [1e-3, 5.0]])
    s = np.array([1e-3, 1.0, 1e3])
    shape = np.array([[1.0, 0.5], [0.5, 2.0]])
    gaussians = {
        "full": (means, np.stack([shape * v**2 for v in s])),
        "diag": (means, np.stack([[v**2, 3 * v**2] for v in s])),
        "spherical": (means, s**2),
        "tied": (means, shape * 1e2),
        "identity": (means,),
    }
    directions = np.random.default_rng(0).normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    cases = {
        "poisson": (mx.Poisson(), (g(1e-3, 1e8, 12)[:, None],), None),
        "gamma": (mx.Gamma(), (shapes, rates), lambda p, x: np.abs(p.shapes[None, :, 0] - p.rates[None, :, 0] * x[:, None, 0])),
        "exponential": (mx.Exponential(), (g(1e-6, 1e6, 9)[:, None],), None),
        "bernoulli": (mx.Bernoulli(), (probs,), None),
        "categorical": (mx.Categorical((3,)), (np.array([[1e-6, 1e-6, 1 - 2e-6], [0.2, 0.3, 0.5], [1e-3, 0.5, 0.499]]),), None),
        "von_mises_fisher": (mx.VonMisesFisher(), (directions, np.array([0.0, 1e-3, 1.0, 10.0, 1e3, 1e5])),
                             lambda p, x: np.broadcast_to(p.concentrations[None, :], (len(x), len(p.concentrations)))),
    }
    for covariance, args in gaussians.items():
        cases[f"gaussian_{covariance}"] = (mx.Gaussian(covariance), args, None)
    return cases


ACCURACY_CASES = _accuracy_cases()


@pytest.mark.parametrize("name", sorted([*ACCURACY_CASES, "student_t"]))
def test_float32_log_densities_match_float64_over_the_parameter_range(name):
    if name == "student_t":
        family, sensitivity = mx.StudentT(dof=4.0), None
        s = np.array([1e-3, 1.0, 1e3])[:, None]
        params = mx.StudentTParams(np.array([[0.0, 0.0], [1e4, -3e4], [1e-3, 5.0]]), np.hstack([s, 2 * s]))
    else:
        family, args, sensitivity = ACCURACY_CASES[name]
        params = family.make_params(*args)
    # The float32-rounded parameters, and 64 draws from each component, rounded to float32.
    params = jax.tree.map(lambda a: np.asarray(np.asarray(a, np.float32), np.float64), params)
    n_components = jax.tree.leaves(params)[0].shape[0]
    keys = jax.random.split(jax.random.key(0), 64)
    draws = [jax.vmap(lambda key, j=j: family.sample(jax.tree.map(lambda a: jax.numpy.asarray(a[j]), params), key))(keys)
             for j in range(n_components)]
    x = np.concatenate([np.asarray(d) for d in draws])
    if name == "von_mises_fisher":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    if name in ("gamma", "exponential"):  # draws below float32's smallest normal number
        x = np.maximum(x, np.finfo(np.float32).tiny)
    x = x.astype(np.float32)
    exact = np.asarray(family.log_prob_components(params, x.astype(np.float64)))
    params32 = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    got = np.asarray(family.log_prob_components(params32, x), np.float64)
    assert got.dtype == np.float64 and np.all(np.isfinite(exact)) and np.all(np.isfinite(got))
    scale = np.maximum(1.0, np.abs(exact))
    if sensitivity is not None:
        scale = np.maximum(scale, sensitivity(params, x.astype(np.float64)))
    error = np.abs(got - exact) / (np.finfo(np.float32).eps * scale)
    assert error.max() <= ACCURACY, f"{name}: float32 error {error.max():.3g} ε (relative)"


def test_float32_poisson_at_large_counts_fits_one_component():
    """Data from one Poisson at λ = 10⁷: the fit is the truth, its history monotone, and select picks K = 1."""
    rng = np.random.default_rng(0)
    x = rng.poisson(1e7, size=(2000, 1)).astype(np.float32)
    from scipy.stats import poisson

    truth = poisson.logpmf(x[:, 0].astype(np.float64), x.astype(np.float64).mean()).mean()
    result = mx.fit(x, mx.Poisson(), 1, key=jax.random.key(0), max_iter=20)
    history = np.asarray(result.history)[: int(result.n_iter)]
    assert abs(float(result.log_likelihood) - truth) < 1e-5 * abs(truth)
    assert np.all(np.diff(history) >= -1e-6 * abs(truth))
    chosen = mx.select(x, mx.Poisson(), range(1, 4), key=jax.random.key(0))
    assert chosen.n_components == 1
