"""Row blocks inside compiled code, and the named axes a compiled EM program runs under.

Block i covers rows [i·B, (i+1)·B). The last block, when N is not a multiple
of B, is read as the final B rows of the data (``dynamic_slice`` clamps its
start) and the rows already seen are masked out. Every block therefore has the
same static shape, the body is traced once, and no padded copy of the data is
ever made.

A compiled EM program may run under two kinds of named axes, both given
explicitly as an :class:`Axes` value (static, part of the compile key):

* restarts traced side by side under ``jax.vmap`` (:func:`vmap_restarts`
  names the axis and hands the function the extended :class:`Axes`);
* rows split over the devices of a mesh, inside ``jax.shard_map``: then each
  device holds a block of the rows, and :func:`sum_over_chunks` adds the
  devices' sums (``lax.psum``). Every sum over rows in the EM iterations goes
  through it, so code written for one array computes the sums over all rows
  on every device unchanged.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Axes", "default_chunk_size", "map_over_chunks", "sum_over_chunks", "vmap_restarts"]

# Working memory per block is about DEFAULT_BLOCK_ELEMENTS × (a few) floats.
DEFAULT_BLOCK_ELEMENTS = 1 << 20


@dataclasses.dataclass(frozen=True)
class Axes:
    """The named axes of a compiled program: restarts side by side, and rows split over devices.

    Attributes:
      restarts: names of the ``vmap`` axes of restarts traced side by side,
        outermost first (see :func:`vmap_restarts`); () for one restart.
      rows: names of the mesh axes the rows are split over, inside
        ``jax.shard_map``; () when every row is on this device.

    Example:
      >>> import jax.numpy as jnp
      >>> from mixtures._src.core.blocks import Axes
      >>> Axes().sum_over_devices(jnp.ones(2)).tolist()  # rows on one device: unchanged
      [1.0, 1.0]
    """

    restarts: tuple[str, ...] = ()
    rows: tuple[str, ...] = ()

    def sum_over_devices(self, tree):
        """Σ of a pytree of per-device sums over the devices holding the rows (itself on one device)."""
        return lax.psum(tree, self.rows) if self.rows else tree

    def per_device(self, tree):
        """A pytree that will hold this device's own sums (typed as varying across devices when rows are split)."""
        return lax.pcast(tree, self.rows, to="varying") if self.rows else tree

    def first_device_only(self, flag):
        """``flag`` on the first device holding rows and False on the others (``flag`` on one device)."""
        return flag & (lax.axis_index(self.rows) == 0) if self.rows else flag

    def for_all_restarts(self, flag):
        """``flag`` (a bool scalar) and-ed over the restarts traced side by side, or None where that cannot be done.

        ``flag`` itself without restart axes. A ``lax.cond`` on a condition
        that differs between restarts becomes a select that runs both sides;
        reduced over the restart axes, the condition is the same for all of
        them and the cond stays a branch. None with restarts inside a mesh
        fit (rows split): jax cannot reduce over a ``vmap`` axis inside
        ``shard_map``, so callers choose statically there.
        """
        if not self.restarts:
            return flag
        if self.rows:
            return None
        return lax.pmin(flag.astype(jnp.int32), self.restarts) > 0

    def mean_over_restarts(self, value):
        """``value`` averaged over the restarts traced side by side (itself where :meth:`for_all_restarts` cannot reduce).

        A quantity the same for every restart stays unbatched under vmap, so
        work that depends only on it and on the data is done once for all
        restarts.
        """
        if not self.restarts or self.rows:
            return value
        return lax.pmean(value, self.restarts)


def vmap_restarts(fn, axes: Axes, in_axes=0):
    """``jax.vmap`` of ``fn(axes, *args)`` over restarts, on a named axis added to ``axes``.

    Args:
      fn: called as ``fn(inner_axes, *args)`` for one restart, where
        ``inner_axes`` is ``axes`` with this restart axis appended.
      axes: the axes the call is traced under.
      in_axes: as for ``jax.vmap``, for ``args``.

    Returns:
      The batched function of ``*args`` (mapped axes 0 or None, outputs
      batched on axis 0). A batch of one is run as one restart, unbatched
      under ``axes``, and given its leading axis of one.

    Example:
      >>> import jax.numpy as jnp
      >>> from mixtures._src.core.blocks import Axes, vmap_restarts
      >>> vmap_restarts(lambda axes, a: axes.mean_over_restarts(a), Axes())(jnp.array([1.0, 3.0])).tolist()
      [2.0, 2.0]
    """
    name = f"restarts{len(axes.restarts)}"
    inner = dataclasses.replace(axes, restarts=axes.restarts + (name,))
    batched = jax.vmap(lambda *args: fn(inner, *args), in_axes=in_axes, axis_name=name)

    def call(*args):
        mapped = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        sizes = {leaf.shape[0] for arg, axis in zip(args, mapped) if axis is not None for leaf in jax.tree.leaves(arg)}
        if sizes != {1}:
            return batched(*args)
        # One restart runs unbatched, under the outer axes only: XLA:CPU ran a batch of one
        # up to twice as slowly, and a per-pass cond stays a branch.
        one = [arg if axis is None else jax.tree.map(lambda a: a[0], arg) for arg, axis in zip(args, mapped)]
        return jax.tree.map(lambda a: a[None], fn(axes, *one))

    return call


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


def sum_over_chunks(fn, x, weights, chunk_size, axes: Axes = Axes()):
    """Σ over row blocks of ``fn(rows, row_weights, row_indices)``.

    Args:
      fn: maps rows (B, D), their weights (B,) and their indices in ``x``
        (B,) to a pytree of sums; rows that must not count arrive with
        weight zero, and ``fn`` must make their contribution exactly zero.
      x: (N, D) data.
      weights: (N,) non-negative row weights, or None for all ones.
      chunk_size: rows per block B (clipped to N).
      axes: the axes the call is traced under; with rows split over
        devices the sums are over every device's rows.

    Returns:
      The pytree of sums over all rows.
    """
    n = x.shape[0]
    size = min(chunk_size, n)
    n_blocks = -(-n // size)

    def block_sum(i):
        start, rows, fresh = _block(x, i, size)
        w = jnp.ones((size,), x.dtype) if weights is None else lax.dynamic_slice_in_dim(weights, start, size)
        return fn(rows, jnp.where(fresh, w, 0).astype(x.dtype), start + jnp.arange(size))

    if n_blocks == 1:
        return axes.sum_over_devices(block_sum(0))
    shapes = jax.eval_shape(block_sum, 0)
    zeros = axes.per_device(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

    def body(i, total):
        return jax.tree.map(jnp.add, total, block_sum(i))

    return axes.sum_over_devices(lax.fori_loop(0, n_blocks, body, zeros))


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
