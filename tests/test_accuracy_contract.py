"""The float32 accuracy contract (docs/numerics.md): a float32 fit matches the float64 fit, whichever pass it takes.

A float32 fit reaches the float64 fit's mean log-likelihood within 1e-5
(relative) and its parameters within what float32 itself resolves, for
components of condition number up to 10³ at any offset and separation; for
a component of condition number 10⁸ it stays finite and no less accurate
than the whitened residuals alone. Each case runs the same EM iterations from
the same start three ways: float64, float32 with the Gaussian's fast pass at
any size (``EMOptions(fast="always")``: the matrix products where the
computed guard allows, in float64 on a CPU with x64 on, as in this suite),
and float32 with the whitened residuals alone (the pass at a size too small
for the products). The rows are float32 numbers for all three, so the
comparison measures the arithmetic. One shape for every case: three compiled
programs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.families.gaussian import fast
from mixtures.engine import EMOptions, Rows, accumulate, fit_loop

N, D, K = 3000, 8, 3
ITERATIONS = 12


def rotation(rng):
    q, r = np.linalg.qr(rng.standard_normal((D, D)))
    return q * np.sign(np.diag(r))


def draw(case: str, seed: int = 0):
    """Rows (float32 numbers, held in float64), true means and covariances of one geometry."""
    rng = np.random.default_rng(seed)
    if case == "hard":  # one rotated component of condition number 10⁸, the others round
        q = rotation(rng)
        covs = np.stack([q @ np.diag(np.geomspace(1e-4, 1e4, D)) @ q.T] + [np.eye(D)] * (K - 1))
        means = rng.normal(0.0, 5.0, (K, D))
    else:
        rotations = [rotation(rng) for _ in range(K)]
        covs = np.stack([q @ np.diag(10 ** rng.uniform(0, 3, D)) @ q.T for q in rotations])
        spread = {"separated": 60.0, "overlapping": 10.0, "far": 0.0}[case]
        means = rng.normal(0.0, spread, (K, D))
        if case == "far":  # 10⁴ of the widest standard deviations from the origin and from each other
            means = 1e4 * np.sqrt(1e3) * (np.eye(K, D) + 1.0)
    covs = (covs + np.swapaxes(covs, 1, 2)) / 2
    z = rng.choice(K, N)
    x = means[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[z], rng.standard_normal((N, D)))
    # The float64 reference fits the same numbers: what remains is the arithmetic's error.
    return x.astype(np.float32).astype(np.float64), means, covs


def start(x, means, covs, dtype):
    """The true parameters moved by a tenth of a standard deviation: the same start for every fit."""
    rng = np.random.default_rng(1)
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    g = mx.Gaussian("full")
    params = g.make_params(means + 0.1 * sd * rng.standard_normal(means.shape), covs * 1.1)
    return mx.Mixture(jnp.full(K, 1.0 / K, dtype), jax.tree.map(lambda a: jnp.asarray(a, dtype), params), g)


@functools.partial(jax.jit, static_argnames="mode")
def _run(mixture, x, *, mode):
    options = EMOptions(chunk_size=1024, max_iter=ITERATIONS, fast=mode)
    return fit_loop(mixture, Rows(x), jnp.zeros((), x.dtype), options)


def run(case: str, dtype, mode: str):
    """The fit from the shared start, in ``dtype`` (x64 on: float32 may take float64 products)."""
    x, means, covs = draw(case)
    m = start(x, means, covs, dtype)
    result = _run(m, jnp.asarray(x, dtype), mode=mode)
    taken = fast.formulation(m.family, m.params, N, mode=mode)
    return jax.device_get(result), taken


def whitened_error(fit, reference):
    """Largest mean difference in the reference's standard deviations, and largest covariance difference, in its frame."""
    u = np.asarray(reference.mixture.params.precisions_cholesky, np.float64)
    dmu = np.asarray(fit.mixture.params.means, np.float64) - np.asarray(reference.mixture.params.means)
    mean_error = np.max(np.abs(np.einsum("kd,kde->ke", dmu, u)))
    cov = np.asarray(fit.mixture.params.covariances, np.float64)
    whitened = np.einsum("kdi,kde,kej->kij", u, cov, u)
    return mean_error, np.max(np.abs(whitened - np.eye(D)))


@pytest.mark.parametrize(
    "case, form",
    [("separated", "products-float64"), ("overlapping", "products-float64"), ("far", "whitened")],
)
def test_float32_matches_float64_at_condition_up_to_a_thousand(case, form):
    reference, _ = run(case, np.float64, "never")
    fast_fit, taken = run(case, np.float32, "always")
    residuals, alone = run(case, np.float32, "auto")  # too small a pass for the products
    assert taken == form and alone == "whitened"  # the guard's choice for these parameters
    for fit in (fast_fit, residuals):
        assert np.all(np.isfinite(np.asarray(fit.history)))
        rel = abs(float(fit.log_likelihood) - float(reference.log_likelihood)) / abs(float(reference.log_likelihood))
        assert rel <= 1e-5, (case, rel)
        mean_error, cov_error = whitened_error(fit, reference)
        # float32 resolves a mean to about ε₃₂ of its distance from the origin, in the
        # component's standard deviations (3·10⁵ of them for "far": 2·10⁻² measured there).
        scale = 1.0 + np.max(np.abs(np.einsum("kd,kde->ke", np.asarray(reference.mixture.params.means),
                                              np.asarray(reference.mixture.params.precisions_cholesky))))
        assert mean_error <= 16 * np.finfo(np.float32).eps * scale and cov_error <= 1e-4, (case, mean_error, cov_error)
    # From the first M-step on: the start itself is rounded to float32 (by 10⁻⁵ of ℓ for "far").
    np.testing.assert_allclose(fast_fit.history[1:], reference.history[1:], rtol=1e-5)


def test_a_condition_1e8_component_stays_finite_and_as_accurate_as_the_residuals():
    reference, _ = run("hard", np.float64, "never")
    fast_fit, taken = run("hard", np.float32, "always")
    residuals, _ = run("hard", np.float32, "auto")
    assert taken == "whitened"  # q of the thin rotated component is far beyond the bound
    errors = []
    for fit in (fast_fit, residuals):
        assert np.all(np.isfinite(np.asarray(fit.history))) and np.isfinite(float(fit.log_likelihood))
        assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(fit.mixture))
        errors.append(abs(float(fit.log_likelihood) - float(reference.log_likelihood)))
    assert errors[0] <= 1.5 * errors[1] + 1e-6 * abs(float(reference.log_likelihood))


def test_float32_takes_float64_products_only_with_x64_on_and_fits_keep_their_dtypes():
    """With x64 off (JAX's default) float32 keeps the whitened residuals; with it on, the products.

    Either way ``mx.fit``'s restarts (vmapped, from vmapped k-means++ starts) run and
    keep float32 and int32, and a warm-started fit agrees across the two settings.
    """
    x, means, covs = draw("separated")
    m = start(x, means, covs, np.float32)
    big = np.tile(x, (43, 1)).astype(np.float32)  # N·K·M = 129000·3·44 ≥ 2²⁴: "auto" takes the products

    def pass_(m, x):
        return accumulate(m, Rows(x), EMOptions(chunk_size=1024, fast="always"))

    program = str(jax.make_jaxpr(pass_)(m, jnp.asarray(x, jnp.float32)))
    assert "cond[" in program and "f64[1024,44]" in program  # a block's T(rows), M = 8 + 36
    assert fast.formulation(m.family, m.params, big.shape[0]) == "products-float64"
    on = mx.fit(big, mx.Gaussian("full"), K, init=m, max_iter=4, tol=0.0)
    with jax.enable_x64(False):
        m32 = start(x, means, covs, np.float32)
        assert "f64[" not in str(jax.make_jaxpr(pass_)(m32, jnp.asarray(x, jnp.float32)))
        assert fast.formulation(m32.family, m32.params, big.shape[0]) == "whitened"
        restarts = mx.fit(big, mx.Gaussian("full"), K, key=jax.random.key(0), n_init=2, max_iter=4)
        off = mx.fit(big, mx.Gaussian("full"), K, init=m32, max_iter=4, tol=0.0)
    kinds = {np.dtype(np.float32), np.dtype(np.int32), np.dtype(bool)}
    for fit in (restarts, off, on):
        assert {a.dtype for a in jax.tree.leaves(fit)} <= kinds and np.isfinite(float(fit.log_likelihood))
    np.testing.assert_allclose(off.history, on.history, rtol=1e-6)
    np.testing.assert_allclose(off.mixture.params.means, on.mixture.params.means, rtol=1e-5, atol=1e-4)
