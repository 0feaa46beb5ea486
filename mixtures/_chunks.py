"""Row-block iteration inside compiled code, without copying or padding the data.

Block i covers rows [i·B, (i+1)·B). The last block, when N is not a multiple
of B, is read as the final B rows of the data (``dynamic_slice`` clamps its
start) and the rows already seen are masked out. Every block therefore has the
same static shape, the body is traced once, and no padded copy of the data is
ever made.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# Working memory per block is about DEFAULT_BLOCK_ELEMENTS × (a few) floats.
DEFAULT_BLOCK_ELEMENTS = 1 << 20


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
        return block_sum(0)
    shapes = jax.eval_shape(block_sum, 0)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def body(i, total):
        return jax.tree.map(jnp.add, total, block_sum(i))

    return lax.fori_loop(0, n_blocks, body, zeros)


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
