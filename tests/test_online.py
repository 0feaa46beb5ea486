"""Online EM (mixtures.online): exact transport of the statistics, the update against a NumPy
reference, a long stream against batch EM, empty components, schedules, jit/vmap, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import mixtures as mx
from mixtures._src.fitting import online
from mixtures._src.families.independent import Independent
from mixtures._src.fitting.online import OnlineState, online_em, polynomial_decay
from tests.helpers import blobs, dense_covariances, recording_compilations

COVARIANCES = ["full", "tied", "diag", "spherical", "identity"]


def random_params(family, rng, k, d, centre=0.0, spread=3.0):
    """Gaussian parameters with random means near ``centre`` and random SPD covariances."""
    means = centre + rng.normal(0.0, spread, size=(k, d))
    if family.covariance == "identity":
        return family.make_params(means)
    factors = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d) * rng.uniform(0.6, 1.6, size=(k, 1, 1))
    full = np.einsum("kij,klj->kil", factors, factors)
    covs = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.3, 3.0, size=(k, d)),
        "spherical": rng.uniform(0.3, 3.0, size=k),
    }[family.covariance]
    return family.make_params(means, covs)


def assert_trees_close(a, b, rtol, atol=0.0):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# -- (1) the transport hook is exact -------------------------------------------------


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_transported_statistics_equal_direct_accumulation(covariance):
    rng = np.random.default_rng(1)
    k, d, n = 3, 4, 60
    family = mx.Gaussian(covariance)
    old, new = random_params(family, rng, k, d), random_params(family, rng, k, d)
    x = rng.normal(0.0, 3.0, size=(n, d))
    resp = rng.dirichlet(np.ones(k), size=n) * rng.uniform(0.0, 2.0, size=(n, 1))  # row weights too
    counts = resp.sum(axis=0)
    accumulate = jax.jit(family.accumulate)
    stats = accumulate(old, x, resp)
    moved = jax.jit(family.transport_stats)(stats, counts, old, new)
    direct = accumulate(new, x, resp)
    scale = float(np.max(np.abs(direct.second)))
    assert_trees_close(moved, direct, rtol=1e-10, atol=1e-10 * scale)
    if covariance == "full":  # the stated formula, with A = U⁻¹U' and c = (μ − μ')U', in NumPy
        u, u2 = np.asarray(old.precisions_cholesky), np.asarray(new.precisions_cholesky)
        a = np.linalg.inv(u) @ u2
        c = np.einsum("kd,kde->ke", np.asarray(old.means) - np.asarray(new.means), u2)
        f = np.einsum("kd,kde->ke", np.asarray(stats.first), a)
        ref = (
            np.einsum("kji,kjl,klm->kim", a, np.asarray(stats.second), a)
            + np.einsum("ki,kj->kij", f, c) + np.einsum("ki,kj->kij", c, f)
            + counts[:, None, None] * np.einsum("ki,kj->kij", c, c)
        )
        np.testing.assert_allclose(moved.second, ref, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_transport_float32_far_from_the_origin(covariance):
    # Clusters at 10⁴ with unit spread: in the data frame float32 would lose the
    # variance (x² ~ 10⁸, ε·x² ~ 10); in the whitened frames both sides stay accurate.
    rng = np.random.default_rng(2)
    k, d, n = 2, 3, 400
    family = mx.Gaussian(covariance)
    old64 = random_params(family, rng, k, d, centre=1e4, spread=0.5)
    new64 = random_params(family, rng, k, d, centre=1e4, spread=0.5)
    x64 = 1e4 + rng.normal(size=(n, d))
    resp64 = rng.dirichlet(np.ones(k), size=n)
    to32 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    old, new, x, resp = to32(old64), to32(new64), x64.astype(np.float32), resp64.astype(np.float32)
    accumulate = jax.jit(family.accumulate)
    moved = jax.jit(family.transport_stats)(accumulate(old, x, resp), jnp.asarray(resp.sum(0)), old, new)
    # Reference: float64 direct accumulation at the float32 parameters (the same numbers, exactly).
    new64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), new)
    reference = accumulate(new64, x.astype(np.float64), resp.astype(np.float64))
    assert moved.second.dtype == jnp.float32
    for got, want in zip(moved, reference):
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=2e-5 * scale)
    # The covariances they imply (variances about 1) agree to 1e-4.
    nk = resp.sum(0)
    m_step = jax.jit(lambda st, n, p: mx.Gaussian(covariance, reg_covar=0.0).m_step(st, n, p).covariances)
    cov, cov_ref = m_step(moved, nk, new), m_step(reference, nk.astype(np.float64), new64)
    np.testing.assert_allclose(np.asarray(cov, np.float64), cov_ref, rtol=1e-4, atol=1e-4)


def test_transport_independent_and_parameter_free_families():
    rng = np.random.default_rng(3)
    g = mx.Gaussian("full")
    family = Independent(((g, (0, 2)), (mx.Poisson(), (1,))))
    x = np.column_stack([rng.normal(size=30), rng.poisson(3.0, size=30), rng.normal(size=30)]).astype(float)
    resp = rng.dirichlet(np.ones(2), size=30)
    old = (random_params(g, rng, 2, 2), mx.Poisson().make_params([[1.0], [4.0]]))
    new = (random_params(g, rng, 2, 2), mx.Poisson().make_params([[2.0], [7.0]]))
    moved = family.transport_stats(family.accumulate(old, x, resp), resp.sum(0), old, new)
    assert_trees_close(moved, family.accumulate(new, x, resp), rtol=1e-10, atol=1e-12)


# -- the update against a NumPy reference -----------------------------------------------


GROUPS = tuple((covariance, (2 * i, 2 * i + 1)) for i, covariance in enumerate(COVARIANCES))


def reference_online_gaussian(groups, weights, means, covs, batches, rhos, reg):
    """Online EM in NumPy on raw moments Σr, Σr x, Σr x xᵀ (parameter-free), bias-corrected.

    The model is a product over column groups (as ``Independent``), each group a Gaussian of
    its covariance type; ``covs`` maps each group to its (K, d, d) dense covariances.
    """
    k, d = means.shape
    eps = 10 * np.finfo(float).eps
    mass, n_k, s1, s2 = 0.0, np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    for xb, rho in zip(batches, rhos):
        logp = np.log(weights)[None, :] + sum(
            np.stack([multivariate_normal(means[j, list(cols)], covs[c][j]).logpdf(xb[:, list(cols)]) for j in range(k)], 1)
            for c, cols in groups
        )
        r = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
        kept = (1 - rho) * mass
        mass = kept + rho
        old, new = kept / mass, rho / mass / xb.shape[0]
        n_k = old * n_k + new * r.sum(0)
        s1 = old * s1 + new * r.T @ xb
        s2 = old * s2 + new * np.einsum("nk,ni,nj->kij", r, xb, xb)
        weights = (n_k + eps) / np.sum(n_k + eps)
        means = s1 / n_k[:, None]
        scatter = s2 - n_k[:, None, None] * np.einsum("ki,kj->kij", means, means)
        for c, cols in groups:
            sub = scatter[:, cols[0] : cols[-1] + 1, cols[0] : cols[-1] + 1]
            eye = np.eye(len(cols))
            if c == "full":
                covs[c] = sub / n_k[:, None, None] + reg * eye
            elif c == "tied":
                covs[c] = np.broadcast_to(sub.sum(0) / n_k.sum() + reg * eye, sub.shape)
            elif c in ("diag", "spherical"):
                var = np.diagonal(sub, axis1=1, axis2=2) / n_k[:, None] + reg
                if c == "spherical":
                    var = np.broadcast_to(var.mean(1, keepdims=True), var.shape)
                covs[c] = np.stack([np.diag(v) for v in var])
    return weights, means, covs


def test_update_matches_numpy_reference_on_raw_moments():
    # Every covariance type at once, as the column groups of one Independent family: the
    # running statistics live in whitened frames that move at every step, the reference's
    # raw moments do not, so agreement checks the update and every transport exactly.
    k, d = 3, 2 * len(GROUPS)
    rng = np.random.default_rng(10)
    centres = rng.normal(0.0, 3.0, size=(k, d))
    x, _ = blobs(4, 12 * 40, means=centres, scales=[1.0, 0.6, 0.8])
    batches = x.reshape(12, 40, d)
    reg = 1e-3
    means0 = centres + rng.normal(size=(k, d))
    family = Independent(tuple((mx.Gaussian(c, reg_covar=reg), cols) for c, cols in GROUPS))
    layouts = {"full": np.stack([np.eye(2)] * k), "tied": np.eye(2), "diag": np.ones((k, 2)), "spherical": np.ones(k)}
    params = tuple(
        mx.Gaussian(c).make_params(means0[:, list(cols)], layouts.get(c)) for c, cols in GROUPS
    )
    start = mx.Mixture(np.full(k, 1 / k), params, family)
    schedule = polynomial_decay(0.7, offset=2.0)
    opt = online_em(schedule)
    state = opt.init(start)
    for xb in batches:
        state = opt.update(state, xb)
    rhos = [float(schedule(t)) for t in range(len(batches))]
    covs = {c: np.stack([np.eye(2)] * k) for c, _ in GROUPS}
    weights, means, covs = reference_online_gaussian(GROUPS, np.full(k, 1 / k), means0, covs, batches, rhos, reg)
    m = state.mixture
    np.testing.assert_allclose(m.weights, weights, rtol=1e-9)
    for (c, cols), p in zip(GROUPS, m.params):
        np.testing.assert_allclose(p.means, means[:, list(cols)], rtol=1e-9, atol=1e-9, err_msg=c)
        dense = dense_covariances(c, p.covariances, k, 2) if c != "identity" else np.stack([np.eye(2)] * k)
        np.testing.assert_allclose(dense, covs[c], rtol=1e-8, atol=1e-10, err_msg=c)
    assert int(state.step) == len(batches)
    assert float(state.mass) == pytest.approx(1 - np.prod(1 - np.array(rhos)), rel=1e-12)


@pytest.fixture(scope="module")
def small_stream():
    x, _ = blobs(4, 12 * 40, means=[[0, 0], [4, 1], [1, 5]], scales=[1.0, 0.6, 0.8])
    return x.reshape(12, 40, 2)


# One configuration for the tests on the small stream, so that they share compiled updates.
SMALL_OPT = online_em(polynomial_decay(0.6), averaging_start=4)


@pytest.fixture(scope="module")
def small_starts():
    """Three full-covariance starts with K = 3 for the small stream."""
    family = mx.Gaussian("full")
    rng = np.random.default_rng(9)
    return [
        mx.Mixture(np.full(3, 1 / 3), family.make_params(rng.normal(0, 2, size=(3, 2)), np.stack([np.eye(2)] * 3)), family)
        for _ in range(3)
    ]


# -- (2) a long stream reaches batch EM --------------------------------------------------

TRUE_MEANS = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 2.0], [0.0, 6.0, -2.0], [5.0, 5.0, 5.0]])


@pytest.fixture(scope="module")
def long_stream():
    """2·10⁵ rows of 4 well-separated full-covariance Gaussians in 3-D; a start and batch EM from it."""
    rng = np.random.default_rng(5)
    n, k, d = 200_000, 4, 3
    z = rng.choice(k, size=n, p=[0.4, 0.3, 0.2, 0.1])
    factors = np.eye(d) + 0.3 * rng.normal(size=(k, d, d))
    x = TRUE_MEANS[z] + np.einsum("nd,ned->ne", rng.normal(size=(n, d)), factors[z])
    # A rough start: means off by about one unit, unit covariances, equal weights.
    family = mx.Gaussian("full")
    start = mx.Mixture(np.full(k, 1 / k), family.make_params(TRUE_MEANS + rng.normal(size=(k, d)), np.stack([np.eye(d)] * k)), family)
    batch = mx.fit(x, family, k, init=start, key=None, tol=1e-8, max_iter=500)
    return x, start, batch


def test_one_pass_reaches_batch_em_log_likelihood(long_stream, tmp_path):
    # 200 minibatches of 1000 rows, one pass, from the start's statistics on a 10⁴-row sample and
    # ρₜ = (t + 11)^(−0.6) (fit_online's default). The running statistics weigh about
    # 1/ρ₂₀₀ ≈ 25 batches, so the estimate is a fit to ~2.5·10⁴ effective rows: its excess loss
    # is about p / (2 N_eff) ≈ 39 / 50 000 ≈ 8e-4 nats per row (p = 39 free parameters);
    # measured 3.2e-4. We allow 2e-3. The averaged iterate (an even average over the last 150
    # steps, ~1.5·10⁵ rows) is expected within ~1.3e-4 (measured 2.7e-5); we allow 5e-4.
    x, start, batch = long_stream
    result = online.fit_online(x, start.family, 4, key=None, init=start, batch_size=1000, averaging_start=50)
    assert result.n_steps == 200 and result.history.shape == (200,)
    target = float(batch.log_likelihood)
    for fitted, tol in [(result.mixture, 2e-3), (result.averaged, 5e-4)]:
        score = float(fitted.score(x))
        assert target - tol < score <= target + 1e-9, (tol, score, target)
        # The running estimate tracks the full-data value.
        assert abs(float(result.log_likelihood) - score) < 0.02
        # Parameters recovered: matched to batch EM's within 0.05 (means) and 0.03 (weights).
        perm = np.array([int(np.argmin(np.linalg.norm(batch.mixture.params.means - m[None], axis=1))) for m in fitted.params.means])
        assert sorted(perm) == [0, 1, 2, 3]
        np.testing.assert_allclose(fitted.params.means, batch.mixture.params.means[perm], atol=0.05)
        np.testing.assert_allclose(fitted.weights, batch.mixture.weights[perm], atol=0.03)
        np.testing.assert_allclose(fitted.params.means, TRUE_MEANS[perm], atol=0.1)
    # The same stream from a .npy file (read in row blocks) gives the same fit.
    path = tmp_path / "stream.npy"
    np.save(path, x)
    from_file = online.fit_online(str(path), start.family, 4, key=None, init=start, batch_size=1000, averaging_start=50)
    assert_trees_close(from_file.state, result.state, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(from_file.history, result.history)


def test_fit_online_epochs_and_weighted_batches():
    x = np.asarray(mx.datasets.load_old_faithful(), np.float64)
    family = mx.Gaussian("diag")
    start = mx.Mixture(np.array([0.5, 0.5]), family.make_params(x[[0, 1]], np.stack([x.var(0)] * 2)), family)
    parts = [(x[i : i + 100], np.ones(len(x[i : i + 100]))) for i in range(0, 272, 100)]  # 100, 100, 72 rows
    twice = online.fit_online(lambda: iter(parts), family, 2, key=None, init=start, n_epochs=2)
    assert twice.n_steps == 6 and twice.history.shape == (6,)
    # The same by hand: the sample is all 272 rows (fewer than init_sample_size), the default
    # step size polynomial_decay(0.6, offset=272 / 100), and the batch of 72 rows, padded to
    # 100 with zero weights, counts as the 72 rows alone.
    opt = online_em(polynomial_decay(0.6, offset=2.72))
    state = opt.init(start, x)
    last = np.r_[x[200:], np.repeat(x[-1:], 28, axis=0)], np.r_[np.ones(72), np.zeros(28)]
    for _ in range(2):
        for xb, w in parts[:2] + [last]:
            state = opt.update(state, xb, w)
    unpadded = twice.state
    assert_trees_close(unpadded.mixture, state.mixture, rtol=1e-10, atol=1e-12)


# -- (3) empty components and tiny batches never give NaN -------------------------------


def assert_finite_state(state):
    for leaf in jax.tree.leaves(state):
        assert np.all(np.isfinite(np.asarray(leaf))), state
    np.testing.assert_allclose(float(jnp.sum(state.mixture.weights)), 1.0, rtol=1e-12)


def test_gaussian_tiny_batches_and_empty_components_stay_finite():
    rng = np.random.default_rng(6)
    family = mx.Gaussian("full", reg_covar=0.0)  # a one-row component's covariance is singular
    # Component 2 sits far from all data: it never takes responsibility.
    start = mx.Mixture(np.full(3, 1 / 3), family.make_params(np.array([[0.0, 0.0], [3.0, 3.0], [1e3, 1e3]]), np.stack([np.eye(2)] * 3)), family)
    draw = lambda b: rng.normal(size=(b, 2)) + 3 * rng.integers(0, 2, size=(b, 1))
    opt = online_em(polynomial_decay(0.6, offset=5.0), averaging_start=3)
    sizes = [1] * 6  # batches of one row: fewer rows than components
    # From empty statistics the first one-row batch collapses components 0 and 1 onto it
    # (as batch EM on that row would): finite, but degenerate.
    state = opt.init(start)
    for b in sizes:
        state = opt.update(state, draw(b))
        assert_finite_state(state)
    # From a sample's statistics (init(mixture, x)) the tiny batches only nudge the fit.
    state = opt.init(start, draw(60))
    for b in sizes:
        state = opt.update(state, draw(b))
        assert_finite_state(state)
    np.testing.assert_array_equal(state.mixture.params.means[2], [1e3, 1e3])  # kept its start
    assert float(state.mixture.weights[2]) < 1e-12
    covs = np.asarray(state.mixture.params.covariances[:2])
    assert np.all(np.linalg.eigvalsh(covs) > 1e-2)  # no collapse (one-row components have variance 0)


def test_poisson_empty_components_stay_finite():
    family = mx.Poisson()
    start = mx.Mixture(np.full(3, 1 / 3), family.make_params([[1.0], [8.0], [5e3]]), family)
    opt = online_em(0.5, averaging_start=0)
    state = opt.init(start)
    rng = np.random.default_rng(7)
    for _ in range(4):  # one row per batch: fewer rows than components
        state = opt.update(state, rng.poisson(2.0, size=(1, 1)).astype(float))
        assert_finite_state(state)
    assert float(state.mixture.params.rates[2, 0]) == 5e3


def test_zero_weight_batch_leaves_the_state_unchanged():
    family, start, batches = poisson_setup()
    opt = online_em(0.3)
    state = opt.update(opt.init(start), batches[0])
    weighted = jax.jit(opt.update)  # all-zero weights are refused on the host, allowed when traced
    assert_trees_close(weighted(state, batches[1], jnp.zeros(60)), state, rtol=0)
    # Rows of weight zero are padding: they change nothing.
    half = weighted(state, batches[1], jnp.asarray(np.r_[np.ones(30), np.zeros(30)]))
    assert_trees_close(half, opt.update(state, np.concatenate([batches[1][:30]] * 2)), rtol=1e-12, atol=1e-14)


# -- (4) schedules --------------------------------------------------------------------


def poisson_setup():
    rng = np.random.default_rng(8)
    batches = np.concatenate([rng.poisson(2.0, size=(6, 30, 1)), rng.poisson(9.0, size=(6, 30, 1))], axis=1).astype(float)
    family = mx.Poisson()
    start = mx.Mixture(np.array([0.5, 0.5]), family.make_params([[1.0], [5.0]]), family)
    return family, start, rng.permuted(batches, axis=1)


@pytest.mark.parametrize(
    "step_size, warm, rtol",
    [
        (0.3, False, 1e-12),
        # optax schedules compute ρ in float32, rounded differently inside the compiled update.
        (optax.polynomial_schedule(init_value=0.9, end_value=0.1, power=1.0, transition_steps=5), False, 1e-6),
        (optax.exponential_decay(init_value=0.8, transition_steps=1, decay_rate=0.7), False, 1e-6),
        (polynomial_decay(0.75, offset=3.0), True, 1e-12),
    ],
)
def test_schedules_give_the_documented_running_average(step_size, warm, rtol):
    # Poisson statistics do not depend on θ: the running statistics must be the bias-corrected
    # ρ-weighted average of the batches' Σ r x / B, with r from the mixture before each update
    # (and, warm, of the sample's, with mass 1 to start).
    family, start, batches = poisson_setup()
    schedule = (lambda t: step_size) if isinstance(step_size, float) else step_size
    rhos = [float(schedule(jnp.int32(t))) for t in range(len(batches))]
    opt = online_em(step_size)
    mass, counts, sums = 0.0, np.zeros(2), np.zeros((2, 1))
    if warm:
        sample = batches[0]
        r = np.asarray(start.responsibilities(sample))
        mass, counts, sums = 1.0, r.sum(0) / len(sample), (r.T @ sample) / len(sample)
        state = opt.init(start, sample)
        np.testing.assert_allclose(state.stats.sum_t, sums, rtol=1e-12)
    else:
        state = opt.init(start)
    for xb, rho in zip(batches, rhos):
        r = np.asarray(state.mixture.responsibilities(xb))
        state = opt.update(state, xb)
        kept = (1 - rho) * mass
        mass = kept + rho
        counts = kept / mass * counts + rho / mass * r.sum(0) / len(xb)
        sums = kept / mass * sums + rho / mass * (r.T @ xb) / len(xb)
        np.testing.assert_allclose(state.counts, counts, rtol=rtol)
        np.testing.assert_allclose(state.stats.sum_t, sums, rtol=rtol)
        np.testing.assert_allclose(state.mixture.params.rates, sums / counts[:, None], rtol=max(rtol, 1e-9))
        assert float(state.mass) == pytest.approx(mass, rel=rtol)


def test_step_sizes_outside_the_unit_interval_are_clipped():
    family, start, batches = poisson_setup()
    one = online_em(1.0)
    odd = online_em(lambda t: jnp.where(t == 0, 5.0, jnp.where(t == 1, 0.0, jnp.nan)))
    s1, s = one.update(one.init(start), batches[0]), odd.update(odd.init(start), batches[0])
    assert_trees_close(s, s1, rtol=1e-12)  # ρ = 5 acts as 1
    for xb in batches[1:3]:  # ρ = 0, then NaN: nothing moves but the step count
        following = odd.update(s, xb)
        assert_trees_close(following._replace(step=s.step), s, rtol=0)
        assert int(following.step) == int(s.step) + 1
        s = following


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(step_size=0.0), ValueError, r"`step_size` must be in \(0, 1\]"),
        (dict(step_size=1.5), ValueError, r"`step_size` must be in \(0, 1\]"),
        (dict(step_size=float("nan")), ValueError, r"`step_size`"),
        (dict(step_size=True), TypeError, r"`step_size`"),
        (dict(step_size="fast"), TypeError, r"`step_size` must be a float in \(0, 1\] or a schedule"),
        (dict(step_size=lambda t: jnp.ones(3)), TypeError, r"`step_size` must return a real scalar"),
        (dict(step_size=lambda: 0.1), TypeError, r"`step_size` must accept the int32 step count"),
        (dict(averaging_start=-1), ValueError, r"`averaging_start`"),
        (dict(averaging_start=2.5), TypeError, r"`averaging_start`"),
        (dict(update_weights=1), TypeError, r"`update_weights`"),
        (dict(chunk_size=0), ValueError, r"`chunk_size`"),
    ],
)
def test_bad_options_are_rejected(kwargs, error, match, no_compilation):
    with pytest.raises(error, match=match):
        online_em(**kwargs)
    assert not no_compilation


@pytest.mark.parametrize(
    "power, offset, error",
    [(0.5, 0.0, ValueError), (1.2, 0.0, ValueError), (0.6, -1.0, ValueError), (0.6, float("inf"), ValueError), ("0.6", 0.0, TypeError)],
)
def test_polynomial_decay_is_validated(power, offset, error):
    with pytest.raises(error, match="`power`|`offset`"):
        polynomial_decay(power, offset)


# -- (5) jit and vmap equal a Python loop ----------------------------------------------


def test_jit_and_vmap_over_restarts_equal_python_loops(small_stream, small_starts):
    opt = SMALL_OPT
    looped = []
    for start in small_starts:
        state = opt.init(start)
        for xb in small_stream:
            state = opt.update(state, xb)
        looped.append(state)
    batches = jnp.asarray(small_stream)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *small_starts)
    states = jax.vmap(opt.init)(stacked)
    step = jax.jit(jax.vmap(opt.update, in_axes=(0, None)))
    for xb in batches:
        states = step(states, xb)
    assert isinstance(states, OnlineState) and states.step.shape == (3,)
    for i, state in enumerate(looped):
        assert_trees_close(jax.tree.map(lambda a: a[i], states), state, rtol=1e-10, atol=1e-12)


# -- (6) bad input is rejected before compilation ---------------------------------------


@pytest.fixture
def no_compilation():
    with recording_compilations() as events:
        yield events


def test_bad_input_is_rejected_before_compilation(no_compilation):
    family = mx.Gaussian("diag")
    start = mx.Mixture(np.full(2, 0.5), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    opt = online_em(0.5)
    state = opt.init(start)
    t = mx.StudentT()
    student = mx.Mixture(np.array([1.0]), t.init_params(jnp.zeros((1, 2)), jnp.ones((4, 2))), t)
    poisson = online_em(0.5).init(mx.Mixture(np.array([1.0]), mx.Poisson().make_params([[1.0]]), mx.Poisson()))
    no_compilation.clear()
    cases = [
        (lambda: opt.init("not a mixture"), TypeError, "`mixture` must be a mixtures.Mixture"),
        (lambda: opt.init(student), ValueError, "`mixture.family` must have an M-step from summed statistics"),
        (lambda: opt.init(mx.Mixture(np.array([0.7, 0.7]), start.params, family)), ValueError, "`mixture.weights`"),
        (lambda: opt.update(start, np.zeros((4, 2))), TypeError, "`state` must be an OnlineState"),
        (lambda: opt.update(state, np.zeros((4, 3))), ValueError, "`x` must have 2 features"),
        (lambda: opt.update(state, np.zeros(4)), ValueError, "`x` must be 2-D"),
        (lambda: opt.update(state, np.array([[0.0, np.nan]])), ValueError, "`x` must contain only finite"),
        (lambda: opt.update(state, np.array([["a", "b"]])), TypeError, "`x` must hold real numbers"),
        (lambda: opt.update(state, np.zeros((4, 2)), sample_weight=-np.ones(4)), ValueError, "`sample_weight`"),
        (lambda: opt.update(state, np.zeros((4, 2)), sample_weight=np.ones(3)), ValueError, "`sample_weight`"),
        (lambda: opt.update(state, np.zeros((4, 2)), sample_weight=np.zeros(4)), ValueError, "`sample_weight`"),
        (lambda: online_em(0.5, averaging_start=2).update(state, np.zeros((4, 2))), ValueError, "averaging_start"),
    ]
    cases.append((lambda: opt.update(poisson, -np.ones((2, 1))), ValueError, "non-negative|negative"))
    fit = online.fit_online
    x = np.zeros((10, 2))
    key = jax.random.key(0)
    no_compilation.clear()
    cases += [
        (lambda: fit(x, family, 2, key=key, prior="default"), ValueError, "`prior` must be None"),
        (lambda: fit(x, t, 2, key=key), ValueError, "`family` must have an M-step"),
        (lambda: fit(x, family, 2, key=key, n_epochs=0), ValueError, "`n_epochs`"),
        (lambda: fit(x, family, 11, key=key), ValueError, "`n_components`"),
        (lambda: fit(x, family, 2, key=None), TypeError, "`key`"),
        (lambda: fit([x, np.full((3, 2), np.nan)], family, 2, key=key), ValueError, r"`batches\[1\]`"),
        (lambda: fit(x, family, 2, key=key, step_size=2.0), ValueError, "`step_size`"),
        (lambda: fit(x, family, 2, key=None, init=start, n_init=2), ValueError, "`n_init`"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert not no_compilation
