"""The Gaussian's matrix-product E-step (gaussian/fast.py) against the whitened residuals and the generic pass.

Each part of the form is checked against the family's own definitions
(log-densities, statistics, Σ r log p); the engine's paths are checked
against each other for every option that changes the E-step; the guard is
checked on the geometries it must refuse; and the restart axis is checked to
keep the choice a branch under vmap. The paths are chosen by the explicit
option ``EMOptions.fast`` ("always": the products at any size; "never": the
engine's generic pass), part of every compiled program's key.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import mixtures as mx
from mixtures._src.core import precision
from mixtures._src.core.blocks import Axes, default_chunk_size, vmap_restarts
from mixtures._src.families.gaussian import fast
from mixtures._src.fitting import fit as fitting
from mixtures.engine import EMOptions, Rows, accumulate
from tests.helpers import blobs

COVARIANCES = ["full", "tied", "diag", "spherical", "identity"]


def data(n=301, seed=0):
    return blobs(seed, n, means=[[0, 0, 0], [4, 4, 0], [0, 5, 5]], scales=[1.0, 0.7, 1.3])[0]


@functools.cache
def fitted(covariance):
    """A mixture fitted for 4 iterations to :func:`data`."""
    return mx.fit(data(), mx.Gaussian(covariance), 3, key=jax.random.key(0), max_iter=4).mixture


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_form_reproduces_densities_statistics_and_expected_log_density(covariance):
    x = data()
    m = fitted(covariance)
    family, params = m.family, m.params
    form = fast.product_form(family, params)
    assert bool(form.usable)
    t = fast.features(m.family.layout, form.centre, jnp.asarray(x))
    logp = family.log_prob_components(params, jnp.asarray(x))
    np.testing.assert_allclose(t @ form.natural + form.offset[None, :], logp, rtol=1e-11, atol=1e-11)
    resp = np.asarray(m.responsibilities(x)) * np.linspace(0.5, 1.5, x.shape[0])[:, None]
    counts = resp.sum(axis=0)
    stats = fast.stats_from_moments(params, form.centre, resp.T @ np.asarray(t), counts)
    direct = family.accumulate(params, jnp.asarray(x), resp)
    for a, b in zip(stats, direct):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.max(np.abs(b)))
    np.testing.assert_allclose(
        fast.expected_log_prob(family, direct, counts, params), np.sum(resp * np.asarray(logp), axis=0), rtol=1e-11
    )


@functools.partial(jax.jit, static_argnums=(2, 3))
def _accumulate(mixture, rows, options, once):
    return accumulate(mixture, rows, options, once=once)


@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("option", ["soft", "hard_weighted", "labels_switched_off", "label_on_switched_off"])
def test_engine_paths_agree(covariance, option):
    x = jnp.asarray(data())
    n = x.shape[0]
    m = fitted(covariance)
    weights = labels = None
    hard = option == "hard_weighted"
    if hard:
        weights = jnp.asarray(np.random.default_rng(1).uniform(0.0, 2.0, n))
    if option in ("labels_switched_off", "label_on_switched_off"):
        to = 2 if option == "label_on_switched_off" else np.arange(n) % 2  # log-likelihood −∞ for the former
        labels = jnp.asarray(np.where(np.arange(n) % 5 == 0, to, -1), jnp.int32)
        m = mx.Mixture(jnp.asarray([0.6, 0.4, 0.0]), m.params, m.family)
    assert bool(fast.product_form(m.family, m.params).usable)
    rows = Rows(x, weights, labels)
    options = EMOptions(chunk_size=64, hard=hard)
    # Compiled as the engine compiles them (one program per path), not op by op.
    by_products = _accumulate(m, rows, options.replace(fast="always"), False)
    by_residuals = _accumulate(m, rows, options, True)  # the whitened residuals alone
    generic = _accumulate(m, rows, options.replace(fast="never"), False)
    for reference in (generic, by_residuals):
        for a, b in zip(jax.tree.leaves(by_products), jax.tree.leaves(reference)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(b))))
    for a, b in zip(jax.tree.leaves(by_residuals), jax.tree.leaves(generic)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(b))))


@pytest.mark.slow
@pytest.mark.parametrize(
    "covariance, options",
    [("full", {"n_init": 3}), ("diag", {"n_init": 3}), ("full", {"prior": "default"})],
    ids=["full", "diag", "full_map"],
)
def test_fit_is_the_same_by_either_path(covariance, options):
    x = jnp.asarray(data(n=400, seed=3))
    family = mx.Gaussian(covariance)
    n_init = options.get("n_init", 1)
    prior = fitting.check_prior(options.get("prior"), family, x, 3)
    keys = jax.random.split(jax.random.key(5), n_init)
    base = EMOptions(chunk_size=default_chunk_size(3 * n_init, 3), max_iter=30)

    def run(mode):
        return fitting.fit_restarts(
            keys, Rows(x), jnp.asarray(1e-8), prior, family=family, k=3, method="kmeans++",
            options=base.replace(fast=mode),
        )

    fast_fit, slow = run("always"), run("never")
    np.testing.assert_array_equal(fast_fit.all_n_iter, slow.all_n_iter)
    np.testing.assert_allclose(fast_fit.all_log_likelihoods, slow.all_log_likelihoods, rtol=1e-10)
    np.testing.assert_allclose(fast_fit.history, slow.history, rtol=1e-10)
    # Restarts that reach the same optimum with the components in another order tie to
    # rounding, so the parameters are compared through a restart-independent order.
    order_fast, order_slow = (np.lexsort(np.asarray(f.mixture.params.means).T) for f in (fast_fit, slow))
    for a, b in zip(jax.tree.leaves(fast_fit.mixture), jax.tree.leaves(slow.mixture)):
        np.testing.assert_allclose(np.asarray(a)[order_fast], np.asarray(b)[order_slow], rtol=1e-8, atol=1e-10)
    # mx.fit (its "auto" mode takes the residuals at this size) reaches the same fit.
    auto = mx.fit(np.asarray(x), family, 3, key=jax.random.key(5), max_iter=30, tol=1e-8, **options)
    np.testing.assert_allclose(auto.all_log_likelihoods, slow.all_log_likelihoods, rtol=1e-10)


def test_only_large_wide_passes_compile_two_paths(monkeypatch):
    def traced(d, n, mode="auto", dtype=jnp.float64):
        family = mx.Gaussian("full")
        covs = np.broadcast_to(np.eye(d), (3, d, d))
        means = np.arange(3 * d, dtype=float).reshape(3, d)
        m = mx.Mixture(jnp.full(3, 1 / 3, dtype), jax.tree.map(lambda a: a.astype(dtype), family.make_params(means, covs)), family)
        x = jax.ShapeDtypeStruct((n, d), dtype)
        options = EMOptions(chunk_size=4096, fast=mode)
        return str(jax.make_jaxpr(lambda m, x: accumulate(m, Rows(x), options))(m, x))

    # M = D + D(D+1)/2: 27 for D = 6, 9 for D = 3; N·K·M against fast.MIN_WORK (2²⁴).
    large_n = fast.MIN_WORK // (3 * 27) + 1
    assert "cond[" in traced(6, large_n)
    assert "cond[" not in traced(6, 1000)  # too little work to repay the second branch
    assert "cond[" not in traced(3, 4 * large_n)  # M = 9 < fast.MIN_WIDTH
    assert "cond[" in traced(6, 1000, mode="always") and "cond[" in traced(3, 1000, mode="always")
    assert "cond[" not in traced(6, large_n, mode="never")
    # float32 rows: the products run in float64 on a CPU, and nowhere in float32.
    float32 = traced(6, large_n, dtype=jnp.float32)
    assert "cond[" in float32 and "f64[4096,27]" in float32  # a block's T(rows), in float64
    assert "f64[1000,27]" not in traced(6, 1000, dtype=jnp.float32)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert precision.wider(np.float32) == np.float32
    assert "cond[" not in traced(6, large_n, dtype=jnp.float32)


def test_guard_refuses_float32_far_centres_and_ill_conditioned_covariances():
    m = fitted("full")
    family = m.family
    assert bool(fast.product_form(family, m.params).usable)
    f32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), m.params)
    assert fast.product_form(family, f32) is None  # float32: never (ε·D is above the tolerance)
    far = m.params._replace(means=m.params.means.at[0].add(1e5))  # 10⁵ sd from the others
    assert not bool(fast.product_form(family, far).usable)
    # float32 data, products in float64: a looser bound (ε₃₂/16): q ≈ 6·10⁶ passes it, 10⁵ sd does not.
    loose = fast.tolerance(np.float32)
    assert bool(fast.product_form(family, m.params._replace(means=m.params.means.at[0].add(2e3)), tolerance=loose).usable)
    assert not bool(fast.product_form(family, m.params._replace(means=m.params.means.at[0].add(2e3))).usable)
    assert not bool(fast.product_form(family, far, tolerance=loose).usable)
    # A thin, rotated component at the centre: its q is about D·cond, the distance term is 0.
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    thin = rotation @ np.diag([1.0, 1.0, 1e-8]) @ rotation.T
    covs = np.stack([thin, np.eye(3), np.eye(3)])
    near = family.make_params(np.zeros((3, 3)), covs)
    assert not bool(fast.product_form(family, near).usable)
    axis_aligned = family.make_params(np.zeros((3, 3)), np.stack([np.diag([1.0, 1.0, 1e-8]), np.eye(3), np.eye(3)]))
    assert bool(fast.product_form(family, axis_aligned).usable)


def test_restart_axis_keeps_the_choice_a_branch():
    def step(axes, a):
        return lax.cond(axes.for_all_restarts(a > 0), lambda: a + 1.0, lambda: a - 1.0)

    plain = str(jax.make_jaxpr(jax.vmap(lambda a: step(Axes(), a)))(jnp.ones(3)))
    named = str(jax.make_jaxpr(vmap_restarts(step, Axes()))(jnp.ones(3)))
    assert "select_n" in plain  # a condition that differs per restart runs both sides
    assert "cond[" in named and "select_n" not in named
    np.testing.assert_array_equal(vmap_restarts(step, Axes())(jnp.array([1.0, 2.0])), [2.0, 3.0])
    np.testing.assert_array_equal(vmap_restarts(step, Axes())(jnp.array([1.0, -2.0])), [0.0, -3.0])


def test_nested_restart_axes_reduce_over_both():
    def step(axes, a):
        return jnp.where(axes.for_all_restarts(a > 0), 1.0, 0.0)

    outer = vmap_restarts(lambda axes, a: vmap_restarts(step, axes)(a), Axes())
    np.testing.assert_array_equal(outer(jnp.ones((2, 3))), np.ones((2, 3)))
    np.testing.assert_array_equal(outer(jnp.array([[1.0, 1.0], [1.0, -1.0]])), np.zeros((2, 2)))


def test_restarts_share_the_centre_and_mesh_programs_choose_statically():
    def mean(axes, a):
        return axes.mean_over_restarts(a)

    centres = vmap_restarts(mean, Axes())(jnp.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_array_equal(centres, [[2.0, 4.0], [2.0, 4.0]])
    assert "psum" in str(jax.make_jaxpr(vmap_restarts(mean, Axes()))(jnp.ones((2, 3))))
    # Inside a mesh fit's per-device program (rows split), JAX cannot reduce over the
    # restart axis: no flag (the Gaussian then takes the whitened residuals), centres kept.
    split = Axes(rows=("rows",))
    flags = vmap_restarts(lambda axes, a: jnp.asarray(axes.for_all_restarts(a > 0) is None), split)(jnp.ones(2))
    kept = vmap_restarts(mean, split)(jnp.array([1.0, 3.0]))
    np.testing.assert_array_equal(flags, [True, True])
    np.testing.assert_array_equal(kept, [1.0, 3.0])
