"""Host-side checks that data lie in a family's domain, shared by the families' ``check_data``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_matrix(x, n_columns: int | None = None) -> np.ndarray:
    """``x`` as a host NumPy array of shape (N, D), optionally with D = ``n_columns``.

    Raises:
      ValueError: if ``x`` is not 2-D or has the wrong number of columns.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"`x` must be 2-D with shape (n_samples, n_features); received shape {x.shape}.")
    if n_columns is not None and x.shape[1] != n_columns:
        raise ValueError(f"`x` must have {n_columns} columns, one per feature; received {x.shape[1]}.")
    return x


def require(x: np.ndarray, ok: np.ndarray, expected: str | Sequence[str]) -> None:
    """Raises ``ValueError`` at the first entry (in row order) where ``ok`` is False.

    Args:
      x: the data, shape (N, D).
      ok: boolean mask of in-domain entries, shape (N, D).
      expected: what a column must hold, e.g. "non-negative integer counts";
        one string for every column or one per column.

    Raises:
      ValueError: naming the column, what it must hold, and the first bad row and value.
    """
    if np.all(ok):
        return
    row, col = divmod(int(np.argmax(~ok.reshape(-1))), x.shape[1])
    what = expected if isinstance(expected, str) else expected[col]
    raise ValueError(f"column {col} of `x` must hold {what}; row {row} has {float(x[row, col])!r}.")


def is_integer(x: np.ndarray) -> np.ndarray:
    """Elementwise: finite and a whole number."""
    return np.isfinite(x) & (x == np.round(x))


def positive_number(value, name: str, upper: float | None = None) -> float:
    """Checks a finite real number in (0, ``upper``) for a family's configuration field."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a positive real number; received {value!r}.")
    value = float(value)
    if not np.isfinite(value) or value <= 0 or (upper is not None and value >= upper):
        bound = f" and below {upper}" if upper is not None else ""
        raise ValueError(f"`{name}` must be finite, positive{bound}; received {value}.")
    return value


def require_square_summable(x: np.ndarray) -> None:
    """Refuses data whose squared deviations, summed over its rows, overflow its dtype.

    A family whose statistics and densities hold squares of the data (the
    Gaussian's covariances, Student's t) sums N rows of up to D squared
    deviations; the initialisation compares rows with one another, whose
    deviations are up to twice the largest from the column means. The
    largest deviation allowed is therefore √(max / (16 N D)), ``max`` the
    dtype's largest finite number: 2·10¹⁶ in float32 and 10¹⁵¹ in float64
    for N = 20 000 rows of D = 2. Beyond it the sums would be infinite and
    the fitted precisions exactly zero.

    Raises:
      ValueError: naming the column, its largest deviation, the largest the
        dtype holds for this N and D, and the remedies.

    Example:
      >>> import numpy as np
      >>> require_square_summable(np.array([[1e19], [-1e19]], np.float32))
      Traceback (most recent call last):
      ...
      ValueError: column 0 of `x` deviates from its mean by 1e+19, more than float32 can hold for 2 rows of 1 column: the sums of squared deviations overflow beyond 3.3e+18 (√(max / (16 N D))). Standardise the columns (subtract the mean, divide by the standard deviation) or use float64 (JAX's x64 mode).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        return
    n, d = x.shape
    wide = x.astype(np.float64)
    deviation = np.max(np.abs(wide - wide.mean(axis=0)), axis=0)
    finfo = np.finfo(x.dtype)
    limit = float(np.sqrt(float(finfo.max) / (16.0 * n * d)))
    worst = int(np.argmax(deviation))
    if deviation[worst] > limit:
        rows = "row" if n == 1 else "rows"
        columns = "column" if d == 1 else "columns"
        raise ValueError(
            f"column {worst} of `x` deviates from its mean by {deviation[worst]:.2g}, more than "
            f"{finfo.dtype} can hold for {n} {rows} of {d} {columns}: the sums of squared deviations "
            f"overflow beyond {limit:.2g} (√(max / (16 N D))). Standardise the columns (subtract the mean, "
            "divide by the standard deviation) or use float64 (JAX's x64 mode)."
        )


class SquaredRealData:
    """Mixin for a family on all of ℝᴰ whose statistics are sums of squares of the data.

    :meth:`check_data` accepts any finite real data (the fitting functions
    refuse NaN and ±∞ first); :meth:`check_methods`, which runs before a fit
    and not on a fitted mixture's rows, refuses data whose squared deviations
    the dtype cannot sum (:func:`require_square_summable`). Listed before the
    family's base class: ``class Gaussian(SquaredRealData, Family)``.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> mx.Gaussian().check_data(np.array([[-1e300, 0.0], [2.5, 3.0]]))  # a fitted model reads it
      >>> mx.StudentT().check_methods(np.array([[-1e6, 0.0], [2.5, 3.0]]))  # a fit may start
    """

    def check_data(self, x) -> None:
        """Accepts any finite real data: the domain is all of ℝᴰ."""
        del x

    def check_methods(self, x) -> None:
        """Before a fit: refuses data whose squared deviations the dtype cannot sum, then the base class's checks."""
        require_square_summable(x)
        super().check_methods(x)
