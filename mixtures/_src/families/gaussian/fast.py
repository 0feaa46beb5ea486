"""The Gaussian's fast E-step pass (its :meth:`~mixtures.Family.fast_sums`).

Two ways to do a block of rows, both giving the engine's generic pass's sums
up to rounding:

* **whitened residuals** yₙₖ = (xₙ − μₖ) Uₖ, computed once per block and
  shared by the log-densities (‖yₙₖ‖²) and the statistics (Σ r y, Σ r y yᵀ):
  always, in every dtype;
* **two matrix products**: log pₖ(x) = T(x)·ηₖ + cₖ with T(x) the moments of
  x about a centre, so a block costs T(rows) @ η and Rᵀ T(rows). Taken, under
  ``lax.cond``, only where float rounding keeps the statistics as accurate as
  the whitened residuals (:func:`product_form`'s guard) and, in "auto" mode,
  only for passes large enough to repay the second compiled branch. The
  products run in ``precision.wider`` of the data's dtype: float64 for
  float32 data on a CPU (which runs float64 products at half the float32
  rate; float64 products on float32 rows are exact in their inputs) when
  JAX's x64 mode is on (:mod:`mixtures._src.core.precision`); the guard is then
  float64's, relaxed to float32's needs (:func:`tolerance`), and the pass
  returns float32 sums. Float32 products are never accurate
  enough (ε · D is above the tolerance), so elsewhere float32 keeps the
  whitened residuals.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixtures._src.core import blocks, precision
from mixtures._src.core.posterior import Sums
from mixtures._src.families.gaussian.params import GaussianParams, GaussianStats, moved, upper_inverse_by_substitution, whitened

__all__ = ["ProductForm", "compiled_form", "formulation", "product_form", "product_sums", "sums", "whitened_sums"]

_HI = lax.Precision.HIGHEST
# The largest ε · maxₖ qₖ at which the product form is used for float64 data (see
# product_form); for float32 data (products in float64) see tolerance().
TOLERANCE = 2.0**-32
# In "auto" mode the products are compiled only for passes of at least this many
# multiply-adds (N·K·M) and rows of at least this many statistics (M): below either, they
# saved less run time than their second compiled branch costs (about 0.8 s of compile;
# M = 5 for D = 2 ran no faster than the whitened residuals).
MIN_WORK = 1 << 24
MIN_WIDTH = 16


class ProductForm(NamedTuple):
    """The log-densities as one matrix product: log pₖ(x) = T(x) · ``natural[:, k]`` + ``offset[k]``.

    Attributes:
      usable: bool scalar; False where float rounding of this form would cost
        accuracy for these parameters.
      natural: (M, K).
      offset: (K,).
      centre: (D,) the point the moments T(x) are taken about.
    """

    usable: jax.Array
    natural: jax.Array
    offset: jax.Array
    centre: jax.Array


def sums(family, params: GaussianParams, x, weights, posterior, *, chunk_size: int, axes: blocks.Axes, mode: str) -> Sums:
    """The pass :meth:`Gaussian.fast_sums` returns: whitened residuals, or the products where they are usable.

    The products are compiled where :func:`compiled_form` gives a form and
    its usability flag can be agreed by every restart traced side by side
    (never inside a mesh fit's per-device program); the choice is then made
    per call under ``lax.cond``. Mode "once" compiles the whitened
    residuals alone.
    """

    def by_residuals():
        return whitened_sums(family, params, x, weights, posterior, chunk_size=chunk_size, axes=axes)

    form = compiled_form(family, params, x.shape[0], mode, axes)
    usable = None if form is None else axes.for_all_restarts(form.usable)
    if usable is None:
        return by_residuals()

    def by_products():
        wide = jax.tree.map(lambda a: a.astype(form.natural.dtype), params)
        s = product_sums(family, wide, form, x, weights, posterior, chunk_size=chunk_size, axes=axes)
        return jax.tree.map(lambda a: a.astype(x.dtype), s)

    return lax.cond(usable, by_products, by_residuals)


def compiled_form(family, params: GaussianParams, n_rows: int, mode: str, axes=blocks.Axes()) -> ProductForm | None:
    """The :class:`ProductForm` a pass of ``n_rows`` rows compiles beside the whitened residuals, or None.

    The form is built in ``precision.wider`` of the data's dtype (float64
    for float32 data on a CPU, available to a trace only with x64 on), with
    :func:`tolerance` for the data's dtype. It is compiled where it exists
    in that dtype (ε · D within the tolerance), its T(rows) block takes at
    most 4× the bytes of the (rows, K, D) block the chunk size is set for,
    and ``mode`` is "always" or, in "auto", the pass is at least
    :data:`MIN_WORK` multiply-adds with M ≥ :data:`MIN_WIDTH`. Never in
    "once" mode.
    """
    dtype = np.dtype(params.means.dtype)
    wide = precision.wider(dtype)
    k, d = params.means.shape
    if mode == "once" or not precision.wide_available(dtype) or np.finfo(wide).eps * d > tolerance(dtype):
        return None
    width = stats_width(family.layout, d)
    if width * wide.itemsize > 4 * k * d * dtype.itemsize:
        return None
    if mode == "auto" and (width < MIN_WIDTH or n_rows * k * width < MIN_WORK):
        return None
    return product_form(family, jax.tree.map(lambda a: jnp.asarray(a).astype(wide), params), axes, tolerance(dtype))


def stats_width(layout: str, d: int) -> int:
    """M, the number of statistics T(x) holds per row: D + D(D+1)/2 for the "full" layout, 2D otherwise."""
    return d + d * (d + 1) // 2 if layout == "full" else 2 * d


def formulation(family, params: GaussianParams, n_rows: int, *, mode: str = "auto", axes=blocks.Axes()) -> str:
    """How an E-step pass of ``n_rows`` rows with these parameters runs: "whitened" or "products-<dtype>".

    The choice :func:`sums` makes (:func:`compiled_form` and its guard),
    evaluated on the host under the current x64 setting, for benchmarks and
    reports.

    Example:
      >>> import jax, mixtures as mx
      >>> from mixtures._src.families.gaussian.fast import formulation
      >>> m = mx.fit(mx.datasets.load_old_faithful(), mx.Gaussian(), 2, key=jax.random.key(0)).mixture
      >>> formulation(m.family, m.params, 272)  # too small a pass to repay a second branch
      'whitened'
    """
    form = compiled_form(family, params, n_rows, mode, axes)
    return "whitened" if form is None or not bool(form.usable) else f"products-{form.natural.dtype.name}"


def log_probs_and_residuals(family, params: GaussianParams, x):
    """(B, K) log-densities and the whitened residuals (K, B, D) they came from."""
    d = x.shape[-1]
    y = whitened(params, x)
    maha = jnp.sum(y * y, axis=-1)  # (K, B)
    logp = -0.5 * (d * math.log(2 * math.pi) + maha) + family.log_det(params.precisions_cholesky, d)[:, None]
    return logp.T, y


def stats_from_residuals(layout: str, resp, y) -> GaussianStats:
    """Σₙ rₙₖ yₙₖ and Σₙ rₙₖ yₙₖ yₙₖᵀ (its diagonal for the diagonal types) from residuals y (K, B, D)."""
    rt = resp.T  # (K, B)
    first = jnp.einsum("kb,kbd->kd", rt, y, precision=_HI)
    weighted = rt[:, :, None] * y
    if layout == "full":
        second = jax.lax.dot_general(weighted, y, (((1,), (1,)), ((0,), (0,))), precision=_HI)
    else:
        second = jnp.sum(weighted * y, axis=1)
    return GaussianStats(first, second)


def whitened_sums(family, params: GaussianParams, x, weights, posterior, *, chunk_size: int, axes: blocks.Axes) -> Sums:
    """The pass with one set of whitened residuals per block, shared by densities and statistics."""

    def block(rows, w, index):
        logp, y = log_probs_and_residuals(family, params, rows)
        resp, ll_sum = posterior.weighted(logp, index, w)
        return Sums(jnp.sum(resp, axis=0), stats_from_residuals(family.layout, resp, y), ll_sum)

    return blocks.sum_over_chunks(block, x, weights, chunk_size, axes)


def tolerance(dtype) -> float:
    """The largest ε · maxₖ qₖ (ε the products' machine epsilon) at which data of ``dtype`` takes the product form.

    :data:`TOLERANCE` (2⁻³²) for float64 data: statistics within about
    10⁻¹⁰ of the whitened residuals'. For float32 data, whose products run
    in float64 (:func:`compiled_form`), ε₃₂/16 = 2⁻²⁷: their statistics'
    rounding stays 16 times below float32's own, so the pass is at least as
    accurate as the float32 whitened residuals; that admits every qₖ up to
    about 3·10⁷ (tests/test_accuracy_contract.py: clusters with condition
    numbers to 10³ and means N(0, 60²) take the products; clusters 10⁴
    standard deviations apart do not).

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.gaussian.fast import tolerance
      >>> tolerance(np.float32) == 2.0**-27, tolerance(np.float64) == 2.0**-32
      (True, True)
    """
    return max(TOLERANCE, float(np.finfo(dtype).eps) / 16)


def product_form(
    family, params: GaussianParams, axes: blocks.Axes = blocks.Axes(), tolerance: float = TOLERANCE
) -> ProductForm | None:
    """The log-densities as one matrix product of moments about a centre, where float rounding allows.

    With c the mean of the component means (averaged over the restarts
    traced side by side, so that they share T), x̃ = x − c and m̃ₖ = μₖ − c,
    a row's statistics are T(x) = (x̃, the products x̃ᵢ x̃ⱼ for i ≤ j) for
    "full" and "tied" (M = D + D(D+1)/2) and (x̃, x̃²) otherwise
    (M = 2D); the quadratic form (x̃ − m̃ₖ)ᵀ Pₖ (x̃ − m̃ₖ) is linear in T(x).
    Expanded this way, rounding grows with how far the centre lies from each
    component and with how far its covariance is from the axes, both in
    units of its standard deviations: qₖ = ‖ |m̃ₖ| |Uₖ| ‖² + ‖ σₖ |Uₖ| ‖²,
    with σₖ the component's standard deviations per feature and |·| taken
    entrywise (qₖ = D + Mahalanobis distance² of the centre for the diagonal
    types). The statistics' relative error is then about ε qₖ / D, ε the
    dtype's machine epsilon, against about ε for the whitened residuals. The
    form is usable only while ε · maxₖ qₖ ≤ ``tolerance`` (by default
    :data:`TOLERANCE`, 2⁻³²: in float64 while every qₖ ≤ about 10⁶; see
    :func:`tolerance` for float32 data). Since qₖ ≥ D, a dtype with ε · D
    above the tolerance never can, and then (float32) there is no form: None.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures._src.families.gaussian.fast import features, product_form
      >>> g = mx.Gaussian("full")
      >>> p = g.make_params(np.array([[0.0, 1.0], [2.0, -1.0]]), np.stack([np.eye(2), 2 * np.eye(2)]))
      >>> form = product_form(g, p)
      >>> x = np.array([[0.5, 0.0], [3.0, 1.0]])
      >>> by_product = features("full", form.centre, x) @ form.natural + form.offset[None, :]
      >>> bool(np.allclose(by_product, g.log_prob_components(p, x)))
      True
    """
    mu, u = params.means, params.precisions_cholesky
    k, d = mu.shape
    if jnp.finfo(mu.dtype).eps * d > tolerance:
        return None
    # Restarts run side by side share one centre, and so one T(rows) per block.
    centre = axes.mean_over_restarts(jnp.mean(mu, axis=0))
    m = mu - centre[None, :]
    log_norm = family.log_det(u, d) - 0.5 * d * math.log(2 * math.pi)
    if u.ndim == 3:
        p = jnp.einsum("kij,klj->kil", u, u, precision=_HI)
        linear = jnp.einsum("kij,kj->ki", p, m, precision=_HI)
        i, j = np.triu_indices(d)
        quadratic = p[:, i, j] * jnp.asarray(np.where(i == j, -0.5, -1.0), mu.dtype)[None, :]
        white = jnp.einsum("kd,kde->ke", m, u, precision=_HI)
        sd = jnp.sqrt(jnp.sum(upper_inverse_by_substitution(u) ** 2, axis=-2))  # √diag(U⁻ᵀ U⁻¹)
        spread = jnp.sum(jnp.einsum("kd,kde->ke", jnp.abs(m), jnp.abs(u), precision=_HI) ** 2, axis=-1)
        spread = spread + jnp.sum(jnp.einsum("kd,kde->ke", sd, jnp.abs(u), precision=_HI) ** 2, axis=-1)
    else:
        scale = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (k, d))
        linear = scale**2 * m
        quadratic = -0.5 * scale**2
        white = m * scale
        spread = jnp.sum(white**2, axis=-1) + d
    natural = jnp.concatenate([linear, quadratic], axis=1).T
    offset = log_norm - 0.5 * jnp.sum(white**2, axis=-1)
    usable = jnp.finfo(mu.dtype).eps * jnp.max(spread) <= tolerance
    return ProductForm(usable & jnp.all(jnp.isfinite(natural)) & jnp.all(jnp.isfinite(offset)), natural, offset, centre)


def features(layout: str, centre, x) -> jax.Array:
    """T(x) of :func:`product_form`: (x̃, x̃ᵢ x̃ⱼ for i ≤ j) or (x̃, x̃²), x̃ = x − ``centre``; (B, M)."""
    xc = x - centre[None, :]
    if layout == "full":
        i, j = np.triu_indices(x.shape[-1])
        return jnp.concatenate([xc, xc[:, i] * xc[:, j]], axis=1)
    return jnp.concatenate([xc, xc * xc], axis=1)


def stats_from_moments(params: GaussianParams, centre, sum_t, counts) -> GaussianStats:
    """:class:`GaussianStats` (in each component's whitened frame) from the moments about the centre.

    S₁ = Σ r x̃ and S₂ = Σ r x̃ x̃ᵀ (its diagonal for the diagonal types) are
    the statistics of the frame with mean c and factor I, moved into each
    component's frame as :meth:`Gaussian.transport_stats` moves them: with
    A = Uₖ and c' = (c − μₖ) Uₖ, first = (S₁ − Nₖ m̃ₖ) Uₖ and
    second = Uₖᵀ (S₂ − S₁ m̃ₖᵀ − m̃ₖ S₁ᵀ + Nₖ m̃ₖ m̃ₖᵀ) Uₖ.
    """
    mu, u = params.means, params.precisions_cholesky
    k, d = mu.shape
    s1, s2 = sum_t[:, :d], sum_t[:, d:]
    if u.ndim == 3:
        i, j = np.triu_indices(d)
        slot = np.zeros((d, d), np.int32)
        slot[i, j] = slot[j, i] = np.arange(i.size)
        s2, a = s2[:, slot], u
        shift = jnp.einsum("kd,kde->ke", centre[None, :] - mu, u, precision=_HI)
    else:
        a = u if u.ndim == 2 else jnp.broadcast_to(u[:, None], (k, d))
        shift = (centre[None, :] - mu) * a
    return moved(GaussianStats(s1, s2), counts, a, shift)


def expected_log_prob(family, stats: GaussianStats, counts, params: GaussianParams) -> jax.Array:
    """Σₙ rₙₖ log p(xₙ | θₖ) = Nₖ (log|Uₖ| − D/2 log 2π) − ½ tr(second), the whitened scatter's trace; (K,)."""
    u = params.precisions_cholesky
    d = params.means.shape[-1]
    trace = jnp.trace(stats.second, axis1=-2, axis2=-1) if u.ndim == 3 else jnp.sum(stats.second, axis=-1)
    return counts * (family.log_det(u, d) - 0.5 * d * math.log(2 * math.pi)) - 0.5 * trace


def product_sums(family, params: GaussianParams, form: ProductForm, x, weights, posterior, *, chunk_size: int, axes: blocks.Axes) -> Sums:
    """The pass as two matrix products per block, T(rows) @ η and Rᵀ T(rows), in the dtype of ``params`` and ``form``.

    The log-likelihood is Σₙₖ rₙₖ (log πₖ + log pₖ(xₙ) − log rₙₖ), its E-step
    identity, with Σₙ rₙₖ log pₖ(xₙ) from the statistics
    (:func:`expected_log_prob`) rather than from the expanded log-densities:
    those carry the form's rounding, which does not average out over rows.
    """

    wide = form.natural.dtype

    def block(rows, w, index):
        t = features(family.layout, form.centre, rows.astype(wide))
        logp = jnp.dot(t, form.natural, precision=_HI) + form.offset[None, :]
        # The responsibilities in the data's dtype, like the whitened residuals'.
        resp, _ = posterior(logp.astype(rows.dtype), index)
        weighted = resp * w[:, None]
        entropy = jnp.sum(jnp.where(resp > 0, weighted * jnp.log(jnp.where(resp > 0, resp, 1.0)), 0.0))
        weighted = weighted.astype(wide)
        return Sums(jnp.sum(weighted, axis=0), jnp.dot(weighted.T, t, precision=_HI), entropy.astype(wide))

    s = blocks.sum_over_chunks(block, x, weights, chunk_size, axes)
    stats = stats_from_moments(params, form.centre, s.stats, s.counts)
    log_weights = posterior.log_weights
    expected = jnp.where(s.counts > 0, s.counts * log_weights + expected_log_prob(family, stats, s.counts, params), 0.0)
    return Sums(s.counts, stats, jnp.sum(expected) - s.log_likelihood)
