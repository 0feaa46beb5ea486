"""The Gaussian's matrix-product E-step (Gaussian.gemm_form) against the whitened residuals it replaces.

Each part of the form is checked against the family's own definitions
(log-densities, statistics, Σ r log p); the engine's two paths are checked
against each other for every option that changes the E-step; the guard is
checked on the geometries it must refuse; and the restart axis is checked to
keep the choice a branch under vmap.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import mixtures as mx
from mixtures._src.core import blocks
from mixtures._src.engine import em as engine
from mixtures._src.families.gaussian import family as gaussian
from tests.helpers import blobs, slow_where

COVARIANCES = ["full", "tied", "diag", "spherical", "identity"]


def data(n=301, seed=0):
    return blobs(seed, n, means=[[0, 0, 0], [4, 4, 0], [0, 5, 5]], scales=[1.0, 0.7, 1.3])[0]


@functools.cache
def fitted(covariance):
    """A mixture fitted for 4 iterations to :func:`data`."""
    return mx.fit(data(), mx.Gaussian(covariance), 3, key=jax.random.key(0), max_iter=4).mixture


@pytest.fixture(autouse=True)
def products_at_any_size(monkeypatch):
    """The engine takes the form for these small data sets too (it skips it below its size limits).

    Compiled programs read these settings when traced, so none traced here is kept for other tests.
    """
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WORK", 0)
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WIDTH", 0)
    yield
    jax.clear_caches()


@pytest.mark.parametrize("covariance", slow_where(COVARIANCES, {"full", "tied"}))
def test_form_reproduces_densities_statistics_and_expected_log_density(covariance):
    x = data()
    m = fitted(covariance)
    family, params = m.family, m.params
    form = family.gemm_form(params)
    assert bool(form.usable)
    t = family.gemm_features(form.aux, jnp.asarray(x))
    logp = family.log_prob_components(params, jnp.asarray(x))
    np.testing.assert_allclose(t @ form.natural + form.offset[None, :], logp, rtol=1e-11, atol=1e-11)
    resp = np.asarray(m.responsibilities(x)) * np.linspace(0.5, 1.5, x.shape[0])[:, None]
    counts = resp.sum(axis=0)
    stats = family.gemm_stats(form.aux, resp.T @ np.asarray(t), counts, params)
    direct = family.accumulate(params, jnp.asarray(x), resp)
    for a, b in zip(stats, direct):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.max(np.abs(b)))
    np.testing.assert_allclose(
        family.expected_log_prob(direct, counts, params), np.sum(resp * np.asarray(logp), axis=0), rtol=1e-11
    )


@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize("option", ["soft", "hard_weighted", "labels_switched_off", "label_on_switched_off"])
def test_engine_paths_agree(covariance, option, monkeypatch):
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
    assert bool(m.family.gemm_form(m.params).usable)
    by_products = engine.accumulate(m, x, weights, 64, hard, labels)
    monkeypatch.setattr(gaussian, "GEMM_TOLERANCE", -1.0)
    whitened = engine.accumulate(m, x, weights, 64, hard, labels)
    for a, b in zip(jax.tree.leaves(by_products), jax.tree.leaves(whitened)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(b))))


@pytest.mark.parametrize(
    "covariance, options",
    [
        pytest.param("full", {"n_init": 3}, marks=pytest.mark.slow),
        pytest.param("diag", {"n_init": 3}, marks=pytest.mark.slow),
        ("full", {"prior": "default"}),
    ],
    ids=["full", "diag", "full_map"],
)
def test_fit_is_the_same_by_either_path(covariance, options, monkeypatch):
    x = data(n=400, seed=3)
    family = mx.Gaussian(covariance)
    kwargs = dict(key=jax.random.key(5), max_iter=30, tol=1e-8, **options)
    fast = mx.fit(x, family, 3, **kwargs)
    monkeypatch.setattr(gaussian, "GEMM_TOLERANCE", -1.0)
    jax.clear_caches()
    slow = mx.fit(x, family, 3, **kwargs)
    np.testing.assert_array_equal(fast.all_n_iter, slow.all_n_iter)
    np.testing.assert_allclose(fast.all_log_likelihoods, slow.all_log_likelihoods, rtol=1e-10)
    np.testing.assert_allclose(fast.history, slow.history, rtol=1e-10)
    # Restarts that reach the same optimum with the components in another order tie to
    # rounding, so the parameters are compared through a restart-independent order.
    order_fast, order_slow = (np.lexsort(np.asarray(f.mixture.params.means).T) for f in (fast, slow))
    for a, b in zip(jax.tree.leaves(fast.mixture), jax.tree.leaves(slow.mixture)):
        np.testing.assert_allclose(np.asarray(a)[order_fast], np.asarray(b)[order_slow], rtol=1e-8, atol=1e-10)


def test_small_passes_compile_one_path(monkeypatch):
    m = fitted("full")
    x = jnp.asarray(data())
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WORK", x.shape[0] * 3 * (3 + 6) + 1)
    small = str(jax.make_jaxpr(lambda m: engine.accumulate(m, x, None, 64))(m))
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WORK", 0)
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WIDTH", 3 + 6 + 1)  # M = 9 for D = 3
    narrow = str(jax.make_jaxpr(lambda m: engine.accumulate(m, x, None, 64))(m))
    monkeypatch.setattr(engine, "PRODUCTS_MIN_WIDTH", 0)
    large = str(jax.make_jaxpr(lambda m: engine.accumulate(m, x, None, 64))(m))
    assert "cond[" not in small and "cond[" not in narrow and "cond[" in large


def test_guard_refuses_float32_far_centres_and_ill_conditioned_covariances():
    m = fitted("full")
    family = m.family
    assert bool(family.gemm_form(m.params).usable)
    f32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), m.params)
    assert family.gemm_form(f32) is None  # float32: never (ε·D is above the tolerance)
    far = m.params._replace(means=m.params.means.at[0].add(1e5))  # 10⁵ sd from the others
    assert not bool(family.gemm_form(far).usable)
    # A thin, rotated component at the centre: its q is about D·cond, the distance term is 0.
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    thin = rotation @ np.diag([1.0, 1.0, 1e-8]) @ rotation.T
    covs = np.stack([thin, np.eye(3), np.eye(3)])
    near = family.make_params(np.zeros((3, 3)), covs)
    assert not bool(family.gemm_form(near).usable)
    axis_aligned = family.make_params(np.zeros((3, 3)), np.stack([np.diag([1.0, 1.0, 1e-8]), np.eye(3), np.eye(3)]))
    assert bool(family.gemm_form(axis_aligned).usable)


def test_restart_axis_keeps_the_choice_a_branch():
    def step(a):
        return lax.cond(blocks.for_all_restarts(a > 0), lambda: a + 1.0, lambda: a - 1.0)

    plain = str(jax.make_jaxpr(jax.vmap(step))(jnp.ones(3)))
    named = str(jax.make_jaxpr(blocks.vmap_restarts(step))(jnp.ones(3)))
    assert "select_n" in plain  # a condition that differs per restart runs both sides
    assert "cond[" in named and "select_n" not in named
    np.testing.assert_array_equal(blocks.vmap_restarts(step)(jnp.array([1.0, 2.0])), [2.0, 3.0])
    np.testing.assert_array_equal(blocks.vmap_restarts(step)(jnp.array([1.0, -2.0])), [0.0, -3.0])


def test_nested_restart_axes_reduce_over_both():
    def step(a):
        return jnp.where(blocks.for_all_restarts(a > 0), 1.0, 0.0)

    inner = blocks.vmap_restarts(step)
    outer = blocks.vmap_restarts(inner)
    np.testing.assert_array_equal(outer(jnp.ones((2, 3))), np.ones((2, 3)))
    np.testing.assert_array_equal(outer(jnp.array([[1.0, 1.0], [1.0, -1.0]])), np.zeros((2, 2)))


def test_restarts_share_the_centre_and_mesh_programs_choose_statically():
    centres = blocks.vmap_restarts(lambda a: blocks.mean_over_restarts(a))(jnp.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_array_equal(centres, [[2.0, 4.0], [2.0, 4.0]])
    assert "psum" in str(jax.make_jaxpr(blocks.vmap_restarts(blocks.mean_over_restarts))(jnp.ones((2, 3))))
    # Inside a mesh fit's per-device program (rows split), JAX cannot reduce over the
    # restart axis: no flag (the engine then takes the whitened residuals), centres kept.
    with blocks.rows_split_over(("rows",)):
        flags = blocks.vmap_restarts(lambda a: jnp.asarray(blocks.for_all_restarts(a > 0) is None))(jnp.ones(2))
        kept = blocks.vmap_restarts(blocks.mean_over_restarts)(jnp.array([1.0, 3.0]))
    np.testing.assert_array_equal(flags, [True, True])
    np.testing.assert_array_equal(kept, [1.0, 3.0])
