"""Row-block iteration inside compiled code, without copying or padding the data.

Block i covers rows [i·B, (i+1)·B). The last block, when N is not a multiple
of B, is read as the final B rows of the data (``dynamic_slice`` clamps its
start) and the rows already seen are masked out. Every block therefore has the
same static shape, the body is traced once, and no padded copy of the data is
ever made.

Inside a data-parallel region (:func:`rows_split_over`, entered by
:mod:`mixtures._parallel` while it traces the per-device program of a mesh
fit) each device holds a block of the rows, and :func:`sum_over_chunks` adds
the devices' sums (``lax.psum``). Every sum over rows in the EM iterations
goes through it (the E-step statistics and log-likelihood, a
:class:`~mixtures.gradient.GradientFamily`'s Q and gradient), so code written
for one array computes the sums over all rows on every device unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
from jax import lax

# Working memory per block is about DEFAULT_BLOCK_ELEMENTS × (a few) floats.
DEFAULT_BLOCK_ELEMENTS = 1 << 20


# The mesh axes the rows are split over while a per-device program is traced; None outside one.
_ROW_AXES: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("row_axes", default=None)


@contextlib.contextmanager
def rows_split_over(axis_names):
    """Traces the enclosed code as the per-device program of rows split over ``axis_names``.

    Use only inside ``jax.shard_map`` over those mesh axes, where each device
    sees its own block of rows: sums over rows then include every device's.
    """
    token = _ROW_AXES.set(tuple(axis_names))
    try:
        yield
    finally:
        _ROW_AXES.reset(token)


def across_devices(tree):
    """Σ of a pytree of per-device sums over the devices holding the rows (itself outside a split)."""
    axes = _ROW_AXES.get()
    return tree if axes is None else lax.psum(tree, axes)


def _per_device(tree):
    """A pytree that will hold this device's own sums (typed as varying across devices, inside a split)."""
    axes = _ROW_AXES.get()
    return tree if axes is None else lax.pcast(tree, axes, to="varying")


def first_device_only(flag):
    """``flag`` on the first device holding rows and False on the others (``flag`` outside a split)."""
    axes = _ROW_AXES.get()
    return flag if axes is None else flag & (lax.axis_index(axes) == 0)


# The vmap axes of side-by-side restarts while their program is traced; () outside one.
_RESTART_AXES: contextvars.ContextVar[tuple] = contextvars.ContextVar("restart_axes", default=())


def vmap_restarts(fn, in_axes=0):
    """``jax.vmap(fn, in_axes)`` over restarts, with a named axis that :func:`for_all_restarts` reduces over.

    A ``lax.cond`` on a condition that differs between restarts becomes a
    select that runs both sides; reduced over this axis, the condition is the
    same for all of them and the cond stays a branch.
    """

    def batched(*args):
        name = f"restarts{len(_RESTART_AXES.get())}"

        def one(*one_args):
            token = _RESTART_AXES.set(_RESTART_AXES.get() + (name,))
            try:
                return fn(*one_args)
            finally:
                _RESTART_AXES.reset(token)

        return jax.vmap(one, in_axes=in_axes, axis_name=name)(*args)

    return batched


def _reducible_restart_axes():
    """The restart axes a collective may reduce over, or None where there are none or it may not.

    jax 0.10 cannot reduce over a vmap axis inside ``shard_map`` (inside
    :func:`rows_split_over`).
    """
    axes = _RESTART_AXES.get()
    return axes if axes and _ROW_AXES.get() is None else None


def for_all_restarts(flag):
    """``flag`` (a bool scalar) and-ed over the restarts traced side by side, or None where that cannot be done.

    ``flag`` itself outside :func:`vmap_restarts`. None inside
    :func:`rows_split_over` with restarts: there a condition on each
    restart's own flag would run both sides of a ``lax.cond``, so callers
    choose statically.
    """
    if not _RESTART_AXES.get():
        return flag
    axes = _reducible_restart_axes()
    return None if axes is None else lax.pmin(flag.astype(jnp.int32), axes) > 0


def mean_over_restarts(value):
    """``value`` averaged over the restarts traced side by side (itself where :func:`for_all_restarts` is ``flag`` or None).

    A quantity the same for every restart stays unbatched under vmap, so work
    that depends only on it and on the data is done once for all restarts.
    """
    axes = _reducible_restart_axes()
    return value if axes is None else lax.pmean(value, axes)


def default_chunk_size(n_components: int, n_features: int) -> int:
    """Rows per block so that a (rows, K, D) temporary holds about 2²⁰ elements."""
    rows = DEFAULT_BLOCK_ELEMENTS // max(1, n_components * n_features)
    return int(min(max(rows, 256), 65536))


def _block(x, i, size):
    n = x.shape[0]
    start = jnp.minimum(i * size, n - size)
    rows = lax.dynamic_slice_in_dim(x, start, size)
    fresh = start + jnp.arange(size) >= i * size
    return start, rows, fresh


def sum_over_chunks(fn, x, weights, chunk_size):
    """Σ over row blocks of ``fn(rows, row_weights, row_indices)``.

    Args:
      fn: maps rows (B, D), their weights (B,) and their indices in ``x``
        (B,) to a pytree of sums; rows that must not count arrive with
        weight zero, and ``fn`` must make their contribution exactly zero.
      x: (N, D) data.
      weights: (N,) non-negative row weights, or None for all ones.
      chunk_size: rows per block B (clipped to N).

    Returns:
      The pytree of sums over all rows (of every device, inside
      :func:`rows_split_over`).
    """
    n = x.shape[0]
    size = min(chunk_size, n)
    n_blocks = -(-n // size)

    def block_sum(i):
        start, rows, fresh = _block(x, i, size)
        w = jnp.ones((size,), x.dtype) if weights is None else lax.dynamic_slice_in_dim(weights, start, size)
        return fn(rows, jnp.where(fresh, w, 0).astype(x.dtype), start + jnp.arange(size))

    if n_blocks == 1:
        return across_devices(block_sum(0))
    shapes = jax.eval_shape(block_sum, 0)
    zeros = _per_device(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

    def body(i, total):
        return jax.tree.map(jnp.add, total, block_sum(i))

    return across_devices(lax.fori_loop(0, n_blocks, body, zeros))


def map_over_chunks(fn, x, chunk_size):
    """Applies a row-wise ``fn(rows) -> (B, ...)`` block by block; returns (N, ...)."""
    n = x.shape[0]
    size = min(chunk_size, n)
    n_blocks = -(-n // size)
    if n_blocks == 1:
        return fn(x)
    shape = jax.eval_shape(fn, jax.ShapeDtypeStruct((size,) + x.shape[1:], x.dtype))
    out = jnp.zeros((n,) + shape.shape[1:], shape.dtype)

    def body(i, out):
        start, rows, _ = _block(x, i, size)
        # Overlapping rows of the last block are recomputed to the same values.
        return lax.dynamic_update_slice_in_dim(out, fn(rows), start, axis=0)

    return lax.fori_loop(0, n_blocks, body, out)
