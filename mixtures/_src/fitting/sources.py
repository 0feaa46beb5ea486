"""Data sources for the streaming and online fits: row batches read on the host.

A source is anything :func:`as_source` accepts: an in-memory array, a NumPy
memmap, the path of a ``.npy`` file, or a callable returning a fresh iterator
of batches. Every pass over a source yields validated :class:`Batch` es of
host arrays in the compute dtype; nothing here touches a device or compiles.

Files (a path, or a memmap opened read-only or read-write) are read with
plain file reads into a new buffer per batch rather than through the memory
map, so the pages a pass has read are the operating system's cache and not
the process's resident memory: memory stays flat however large the file.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import types
import warnings
from typing import Callable, Iterator, NamedTuple

import numpy as np

from mixtures._src.core import checks
from mixtures._src.core.incomplete import median_filled, without_empty_rows
from mixtures._src.fitting import checkpoints

__all__ = ["Batch", "Holes", "Scan", "Source", "as_source", "default_batch_size", "padded", "scan"]

# A batch holds about this many values (16 MiB of float32).
DEFAULT_BATCH_ELEMENTS = 1 << 22


def default_batch_size(n_features: int) -> int:
    """Rows per batch read from an array or a file when ``batch_size`` is not given.

    Example:
      >>> from mixtures._src.fitting.sources import default_batch_size
      >>> default_batch_size(8)
      524288
    """
    return int(max(1024, DEFAULT_BATCH_ELEMENTS // max(1, n_features)))


class Batch(NamedTuple):
    """Rows of a source on the host: ``x`` (B, D) in the compute dtype and optional ``weights`` (B,)."""

    x: np.ndarray
    weights: np.ndarray | None


class Source:
    """A re-iterable source of row batches; see :func:`as_source`.

    Attributes:
      name: the argument's name, used in messages.
      n_features: D when known (arrays and files, or after a :func:`scan`), else None.
      block_rows: for an array or a file read in row blocks, the rows per
        block (a batch is then named by its rows, ``batches[start:stop]``);
        None for lists and callables (a batch is named by its index,
        ``batches[i]``).
    """

    def __init__(self, name: str, read: Callable[[], Iterator], family, n_features: int | None, block_rows: int | None = None):
        self.name = name
        self._read = read
        self._family = family
        self.n_features = n_features
        self.block_rows = block_rows
        self._methods_checked = False  # the family's own methods, on the first whole pass only
        self.holes = None  # with missing entries: a Holes, set by take_missing()

    def take_missing(self) -> None:
        """Lets the batches hold NaN at missing entries (``missing="marginalize"``); see :class:`Holes`."""
        self.holes = Holes()

    def batches(self) -> Iterator[Batch]:
        """One pass: every batch validated (shape, dtype, finite values, the family's domain, weights).

        Every batch is computed in the first batch's floating dtype.
        """
        d = self.n_features
        dtype = None
        items = self._read()
        try:
            for i, item in enumerate(items):
                batch = _validate(item, self._label(i, item), d, self._family, not self._methods_checked, self.holes)
                d = batch.x.shape[1]
                if dtype is None:
                    dtype = batch.x.dtype
                elif batch.x.dtype != dtype:
                    batch = Batch(batch.x.astype(dtype), None if batch.weights is None else batch.weights.astype(dtype))
                yield batch
            self._methods_checked = True
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a file reader's handle, also after a validation error

    def _label(self, i: int, item) -> str:
        if self.block_rows is None:
            return f"{self.name}[{i}]"
        start = i * self.block_rows
        rows = item[0] if isinstance(item, tuple) else item
        return f"{self.name}[{start}:{start + len(rows)}]"


def as_source(
    batches, family, *, batch_size: int | None = None, sample_weight=None, name: str = "batches"
) -> Source:
    """Checks what ``batches`` is and returns a :class:`Source` over it (host only).

    Args:
      batches: one of

        * a (N, D) array (NumPy, JAX or array-like), read in row blocks;
        * a list of batches: (B, D) arrays or ``(x, sample_weight)`` pairs;
        * a ``numpy.memmap`` of shape (N, D), read from its file in row
          blocks (through the map when it was opened copy-on-write, so that
          changes made to it are seen);
        * a ``str`` or ``os.PathLike`` naming a ``.npy`` file of shape
          (N, D), read in row blocks without loading it;
        * a callable taking no arguments and returning an iterator (for
          example a generator function) whose items are (B, D) arrays or
          ``(x, sample_weight)`` pairs; it is called once per pass and must
          yield the same rows on every pass. Batches may differ in length.

      family: the component family, whose ``check_data`` every batch passes.
      batch_size: rows per block for arrays and files; default
        :func:`default_batch_size`. Ignored for a callable.
      sample_weight: optional (N,) row weights of an array, memmap or file
        source, read block by block with it; a list or a callable gives its
        weights in ``(x, sample_weight)`` pairs instead.
      name: the argument's name, used in messages (a row block of an array
        or a file is named ``batches[start:stop]``, with rows counted from
        ``start``; an item of a list or a callable ``batches[i]``).

    Returns:
      A :class:`Source`.

    Raises:
      TypeError: ``batches`` is none of the above.
      ValueError: a file is not a readable 2-D ``.npy`` array of real numbers.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures._src.fitting.sources import as_source
      >>> source = as_source(np.arange(10.0).reshape(5, 2), mx.Gaussian(), batch_size=2)
      >>> [b.x.shape[0] for b in source.batches()]
      [2, 2, 1]
    """
    if batch_size is not None:
        batch_size = checks.positive_int(batch_size, "batch_size")
    checks.held_here(batches, name)
    if isinstance(batches, (str, os.PathLike)):
        path = os.fspath(batches)
        shape, dtype, offset = _npy_layout(path, name)
        return _file_source(path, offset, shape, dtype, batch_size, sample_weight, family, name)
    if isinstance(batches, np.memmap):
        layout = _memmap_layout(batches)
        if layout is not None:
            path, offset = layout
            _check_array_kind(batches, name)
            return _file_source(path, offset, batches.shape, batches.dtype, batch_size, sample_weight, family, name)
    if isinstance(batches, (Iterator, map, filter)) or _is_generator(batches):
        raise TypeError(
            f"`{name}` must be re-iterable: pass a callable returning a fresh iterator (for example the "
            "generator function itself, not the generator it returns); an iterator is used up after one pass."
        )
    listed = isinstance(batches, list) and batches and all(_is_batch(b) for b in batches)
    if (listed or callable(batches) and not hasattr(batches, "shape")) and sample_weight is not None:
        raise ValueError(
            f"`sample_weight` goes with an array, memmap or .npy `{name}`; a list or a callable gives "
            "its weights as (x, sample_weight) pairs."
        )
    if callable(batches) and not hasattr(batches, "shape"):
        return Source(name, lambda: _call(batches, name), family, None)
    if listed:
        parts = list(batches)
        return Source(name, lambda: iter(parts), family, None)
    x = batches if isinstance(batches, np.ndarray) else _as_array(batches, name)
    _check_array_kind(x, name)
    size = batch_size or default_batch_size(x.shape[1])
    n = x.shape[0]
    w = _row_weights(sample_weight, n)
    if w is None:
        return Source(name, lambda: (x[i : i + size] for i in range(0, n, size)), family, x.shape[1], size)
    return Source(name, lambda: ((x[i : i + size], w[i : i + size]) for i in range(0, n, size)), family, x.shape[1], size)


def _row_weights(sample_weight, n: int):
    """A whole source's (N,) weights, checked as ``fit`` checks them, or None."""
    if sample_weight is None:
        return None
    return np.asarray(checks.as_sample_weight(sample_weight, n))


class Scan(NamedTuple):
    """What one validating pass over a source learnt (see :func:`scan`).

    Attributes:
      n_rows: number of rows N.
      n_features: D.
      n_positive: rows of positive weight.
      total_weight: Σₙ wₙ (N without weights).
      max_rows: the longest batch's length.
      n_batches: number of batches.
      sample: (S, D) rows drawn uniformly without replacement, S = min(N,
        sample size), in stream order; all rows, in order, when N ≤ the sample size.
      sample_weights: (S,) their weights, or None when no batch had weights.
      digest: with ``digest=True``, the SHA-256 hex digest of every batch in
        order (its rows' and weights' dtype, shape and bytes, as validated:
        batch boundaries count); else None.
      max_missing: with missing entries, the most any row with an observed
        entry misses; else 0.
    """

    n_rows: int
    n_features: int
    n_positive: int
    total_weight: float
    max_rows: int
    n_batches: int
    sample: np.ndarray
    sample_weights: np.ndarray | None
    digest: str | None = None
    max_missing: int = 0


def scan(source: Source, sample_size: int, seed, digest: bool = False) -> Scan:
    """One pass over ``source``: validates every batch, counts rows and draws a reservoir sample.

    The sample is Vitter's reservoir sampling (algorithm R) over the rows
    with a NumPy generator seeded by ``seed``, so it holds S rows drawn
    uniformly without replacement whatever the batch boundaries.

    Args:
      source: a :class:`Source`.
      sample_size: the sample's size bound S.
      seed: anything ``numpy.random.default_rng`` accepts.
      digest: also hash every batch (for a checkpoint's fingerprint), in
        this same pass: the data is not read again for it.

    Returns:
      A :class:`Scan`.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures._src.fitting.sources import as_source, scan
      >>> s = scan(as_source(np.arange(20.0).reshape(10, 2), mx.Gaussian(), batch_size=3), 4, 0)
      >>> s.n_rows, s.max_rows, s.n_batches, s.sample.shape
      (10, 3, 4, (4, 2))
    """
    rng = np.random.default_rng(seed)
    sample = weights = None
    n = n_positive = max_rows = n_batches = 0
    total = 0.0
    has_weights = False
    hashed = hashlib.sha256() if digest else None
    for batch in source.batches():
        b = batch.x.shape[0]
        if hashed is not None:
            _hash_batch(hashed, batch)
        w = np.ones(b, batch.x.dtype) if batch.weights is None else batch.weights
        has_weights |= batch.weights is not None
        if sample is None:
            sample = np.empty((0, batch.x.shape[1]), batch.x.dtype)
            weights = np.empty((0,), batch.x.dtype)
        fill = max(0, min(sample_size - n, b))
        if fill:
            sample = np.concatenate([sample, batch.x[:fill]])
            weights = np.concatenate([weights, w[:fill]])
        if fill < b:
            # Row t (0-based in the stream) replaces slot j ~ U{0..t} when j < S; in stream order.
            t = n + np.arange(fill, b)
            j = (rng.random(t.shape[0]) * (t + 1)).astype(np.int64)
            keep = np.flatnonzero(j < sample_size)
            slots, rows = j[keep], keep + fill
            last = np.unique(slots[::-1], return_index=True)[1]  # the last write to each slot wins
            chosen = slots[::-1][last], rows[::-1][last]
            sample[chosen[0]] = batch.x[chosen[1]]
            weights[chosen[0]] = w[chosen[1]]
        n += b
        n_positive += int(np.count_nonzero(w > 0))
        total += float(np.sum(w, dtype=np.float64))
        max_rows = max(max_rows, b)
        n_batches += 1
    if n == 0:
        raise ValueError(f"`{source.name}` yielded no rows.")
    holes = source.holes
    if holes is not None:
        holes.counting = False
        never = np.flatnonzero(np.isnan(holes.fill))
        if never.size:
            raise ValueError(
                f"`{source.name}`: column {int(never[0])} has no observed entry (all NaN): nothing can be learnt "
                "of it; remove the column."
            )
        if holes.n_empty:
            warnings.warn(
                f"`{source.name}`: {holes.n_empty} row{'s' if holes.n_empty > 1 else ''} with no observed entry "
                f"(all NaN) count{'' if holes.n_empty > 1 else 's'} for nothing (weight zero).",
                stacklevel=4,
            )
    if n_positive == 0:
        raise ValueError(f"`{source.name}` must have at least one row of positive `sample_weight`; all are zero.")
    source.n_features = sample.shape[1]  # later passes hold every batch to it
    return Scan(
        n, sample.shape[1], n_positive, total, max_rows, n_batches, sample, weights if has_weights else None,
        None if hashed is None else hashed.hexdigest(), 0 if holes is None else holes.max_missing,
    )


def _hash_batch(hashed, batch: Batch) -> None:
    """Adds a batch's rows and weights (dtype, shape, bytes; "none" for no weights) to ``hashed``."""
    for a in (batch.x, batch.weights):
        if a is None:
            hashed.update(b"none;")
        else:
            checkpoints.add_array(hashed, a)


def padded(batch: Batch, rows: int, name: str = "batches") -> tuple[np.ndarray, np.ndarray]:
    """A batch as exactly ``rows`` rows and their weights, the added rows weighted zero.

    The added rows repeat the batch's last row, so they lie in every family's
    domain and their (zero-weighted) statistics are finite.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.sources import Batch, padded
      >>> x, w = padded(Batch(np.array([[1.0], [2.0]]), None), 3)
      >>> x[:, 0].tolist(), w.tolist()
      ([1.0, 2.0, 2.0], [1.0, 1.0, 0.0])
    """
    b = batch.x.shape[0]
    if b > rows:
        raise ValueError(
            f"`{name}` yielded a batch of {b} rows on a later pass, longer than the longest batch of the first "
            f"pass ({rows}); the source must yield the same rows on every pass."
        )
    w = np.ones(b, batch.x.dtype) if batch.weights is None else batch.weights
    if b == rows:
        return batch.x, w
    x = np.concatenate([batch.x, np.repeat(batch.x[-1:], rows - b, axis=0)])
    return x, np.concatenate([w, np.zeros(rows - b, w.dtype)])


# -- reading ------------------------------------------------------------------


class Holes:
    """What a source with missing entries (NaN) has seen: a value per column for checking batches, and counts.

    A batch's missing entries are filled, for the family's domain check only,
    with the batch's column median, or (for a column with nothing observed in
    the batch) the last observed value of that column in an earlier batch; a
    batch whose column has no observed value yet is checked on its other
    columns' rows once such a value is known (on the next pass, before its
    rows are used by an EM iteration). Rows with nothing observed are given
    weight zero: they count for nothing.
    """

    def __init__(self):
        self.fill = None  # (D,) the last observed value of each column, NaN while none
        self.max_missing = 0  # over rows with an observed entry
        self.n_empty = 0  # rows with nothing observed, counted on the first pass
        self.counting = True

    def filled(self, x: np.ndarray) -> np.ndarray:
        """``x`` with its missing entries filled for checking (NaN where no value is known yet)."""
        observed = ~np.isnan(x)
        if self.fill is None:
            self.fill = np.full(x.shape[1], np.nan)
        out = median_filled(x, self.fill)
        seen = observed.any(axis=0)
        self.fill = np.where(seen, out[np.argmax(observed, axis=0), np.arange(x.shape[1])], self.fill)
        return out


def _validate(item, name: str, n_features: int | None, family, methods: bool = True, holes: Holes | None = None) -> Batch:
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"`{name}` must be an (B, D) array or an (x, sample_weight) pair; received a tuple of {len(item)}.")
        x, w = item
    else:
        x, w = item, None
    x = checks.as_host_data(x, name, allow_missing=holes is not None)
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(
            f"`{name}` must have {n_features} features (columns), as the earlier batches; received {x.shape[1]}."
        )
    checked = x if holes is None else holes.filled(x)
    unchecked = holes is not None and np.isnan(checked).any()
    if not unchecked:
        family.check_data(checked)
        if methods:  # every pass re-reads the same rows: the family's methods are checked on the first
            family.check_methods(checked)
    if w is not None:
        w = _batch_weights(w, x.shape[0], f"{name} sample_weight", x.dtype)
    if holes is not None:
        n_missing = np.sum(np.isnan(x), axis=1)
        empty = n_missing == x.shape[1]
        if holes.counting:
            holes.n_empty += int(np.count_nonzero(empty))
            holes.max_missing = max(holes.max_missing, int(np.max(np.where(empty, 0, n_missing))))
        w = without_empty_rows(x, w)
    return Batch(x, w)


def _batch_weights(w, rows: int, name: str, dtype) -> np.ndarray:
    """A batch's row weights: (B,), real, finite, non-negative (unlike a whole data set's, all may be zero)."""
    try:
        values = np.asarray(w)
    except (TypeError, ValueError):
        values = np.asarray(w, dtype=object)
    if values.dtype == np.bool_ or not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"`{name}` must hold real numbers; received dtype {values.dtype}.")
    if values.shape != (rows,):
        raise ValueError(f"`{name}` must have shape ({rows},), one weight per row; received shape {values.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        i = int(np.argmax(~np.isfinite(values) | (values < 0)))
        raise ValueError(f"`{name}` must be finite and non-negative; received {values[i]} at index {i}.")
    return values.astype(dtype)


def _call(fn, name):
    it = fn()
    try:
        return iter(it)
    except TypeError:
        raise TypeError(f"`{name}` must return an iterator of batches when called; it returned {type(it).__name__}.") from None


def _is_batch(item) -> bool:
    """Whether a list item is a batch: a 2-D array or an (x, sample_weight) pair with a 2-D x."""
    if isinstance(item, tuple):
        return len(item) == 2 and np.ndim(item[0]) == 2
    return isinstance(item, np.ndarray) and item.ndim == 2 or hasattr(item, "shape") and len(item.shape) == 2


def _is_generator(x) -> bool:
    return isinstance(x, types.GeneratorType)


def _as_array(x, name):
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be an array, a numpy.memmap, a .npy path or a callable returning an iterator "
            f"of batches; could not convert a {type(x).__name__}: {err}"
        ) from None


def _check_array_kind(x, name):
    kind = np.dtype(x.dtype)
    if kind == np.bool_ or not (np.issubdtype(kind, np.floating) or np.issubdtype(kind, np.integer)):
        raise TypeError(
            f"`{name}` must be an array of real numbers, a numpy.memmap, a .npy path or a callable returning "
            f"an iterator of batches; received {type(x).__name__} of dtype {kind}."
        )
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must have shape (n_samples, n_features) with both positive; received shape {tuple(x.shape)}.")


def _npy_layout(path: str, name: str):
    """(shape, dtype, data offset) of a C-ordered 2-D ``.npy`` file, read from its header only."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = read_header[version](f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except OSError as err:
        raise ValueError(f"`{name}`: cannot read {path!r}: {err.strerror or err}.") from None
    except ValueError as err:
        raise ValueError(f"`{name}`: {path!r} is not a .npy file: {err}.") from None
    if dtype.hasobject:
        raise ValueError(f"`{name}`: {path!r} holds Python objects; only numeric .npy files are read (never unpickled).")
    if fortran and len(shape) == 2 and shape[1] > 1:
        raise ValueError(
            f"`{name}`: {path!r} is stored in Fortran (column) order, which cannot be read in row blocks; "
            "save it C-ordered (numpy.ascontiguousarray)."
        )
    if len(shape) != 2:
        raise ValueError(f"`{name}`: {path!r} must hold a 2-D (n_samples, n_features) array; it has shape {shape}.")
    _check_array_kind(np.empty((1, 1), dtype), name)
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"`{name}`: {path!r} must have at least one row and one column; it has shape {shape}.")
    if offset + shape[0] * shape[1] * dtype.itemsize > size:
        raise ValueError(f"`{name}`: {path!r} is truncated: its header declares shape {shape} of {dtype}.")
    return shape, dtype, offset


def _memmap_layout(x: np.memmap):
    """(file name, byte offset) when ``x`` maps a whole C-ordered file region that plain reads see; else None."""
    if not isinstance(x.base, mmap.mmap) or x.filename is None or x.mode == "c":
        return None
    if x.ndim != 2 or not x.flags.c_contiguous:
        return None
    return x.filename, x.offset


def _file_source(path, offset, shape, dtype, batch_size, sample_weight, family, name) -> Source:
    n, d = shape
    size = batch_size or default_batch_size(d)
    row_bytes = d * dtype.itemsize
    weights = _row_weights(sample_weight, n)

    def read():
        with open(path, "rb", buffering=0) as f:
            for start in range(0, n, size):
                rows = min(size, n - start)
                f.seek(offset + start * row_bytes)
                block = np.empty((rows, d), dtype)
                view = memoryview(block).cast("B")
                got = 0
                while got < view.nbytes:
                    k = f.readinto(view[got:])
                    if not k:
                        raise ValueError(f"`{name}`: {path!r} ended early, at row {start + got // row_bytes}.")
                    got += k
                yield block if weights is None else (block, weights[start : start + rows])

    return Source(name, read, family, d, size)
