"""Rows with missing entries on the host: checked, counted, and filled for the initialisation.

``missing="marginalize"`` lets a fit's rows hold NaN at missing entries. The
EM iterations then use each row's observed entries only (the family's
:meth:`~mixtures.Family.log_prob_observed` and
:meth:`~mixtures.Family.accumulate_observed`); everything around them is
prepared here, before anything is compiled:

* a column with no observed entry is refused (nothing can be learnt of it);
* a row with no observed entry carries no information and is left out of
  the fit, with a warning saying how many;
* the family's domain is checked on the observed entries;
* the initialisation (k-means++, hc, ...) works on complete rows: each
  missing entry is filled with its column's median observed value (an
  observed value, so in the family's domain), and the EM iterations that
  follow use the observed entries alone.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from mixtures._src.core import checks

__all__ = [
    "MISSING", "Incomplete", "by_missing", "check_missing", "incomplete_rows", "max_missing", "median_filled",
    "row_width", "without_empty_rows",
]

MISSING = (None, "marginalize")


def check_missing(missing, family=None) -> bool:
    """Checks the ``missing`` argument; True for "marginalize".

    Example:
      >>> import mixtures as mx
      >>> check_missing("marginalize", mx.Gaussian())
      True
      >>> check_missing("drop")
      Traceback (most recent call last):
      ...
      ValueError: `missing` must be None (NaN is refused) or "marginalize" (NaN marks a missing entry); received 'drop'.
    """
    if missing is not None and (not isinstance(missing, str) or missing not in MISSING):
        raise ValueError(
            '`missing` must be None (NaN is refused) or "marginalize" (NaN marks a missing entry); '
            f"received {missing!r}."
        )
    if missing is None:
        return False
    if family is not None and not family.handles_missing:
        raise TypeError(
            f'`missing="marginalize"`: {type(family).__name__} cannot take rows with missing entries '
            "(its handles_missing is False); the families that can are Gaussian (every covariance model), Poisson, "
            "Bernoulli, Exponential, Categorical, and Independent products of these."
        )
    return True


class Incomplete(NamedTuple):
    """Checked rows with missing entries.

    Attributes:
      x: (N', D) the rows with at least one observed entry, NaN where missing.
      filled: (N', D) the same rows with each missing entry set to its column's median observed value.
      kept: (N,) bool, which of the given rows ``x`` holds.
      max_missing: the most missing entries of any kept row (0 when none is missing).
    """

    x: np.ndarray
    filled: np.ndarray
    kept: np.ndarray
    max_missing: int


def max_missing(x: np.ndarray) -> int:
    """The most NaN entries in any row of ``x`` (host)."""
    return int(np.max(np.sum(np.isnan(x), axis=1), initial=0))


def row_width(n_features: int, max_missing: int) -> int:
    """Elements per row and component of a block's widest temporary, for sizing the blocks.

    A complete row's whitened residual holds D; a row missing M entries also
    holds the M (M + 1) / 2 entries of its precision's missing block (and of
    that block's factor, inverse and conditional covariance).

    Example:
      >>> row_width(16, 0), row_width(16, 4), row_width(16, 11)
      (16, 16, 66)
    """
    return max(n_features, max_missing * (max_missing + 1) // 2)


def incomplete_rows(
    x, family, name: str = "x", n_features: int | None = None, *, drop: bool = True, fill=None
) -> Incomplete:
    """Checks rows whose missing entries are NaN (infinite values are still refused).

    Args:
      x: (N, D) array-like.
      family: the family whose domain the observed entries must lie in.
      name: the argument's name in messages.
      n_features: the number of columns required, if known.
      drop: the fit's rules: leave out rows with nothing observed (with a
        warning) and refuse a column with nothing observed. When False (a
        mixture's methods) both are taken as they are: such a row gets the
        mixing weights as responsibilities.
      fill: without ``drop``, a (D,) row in the family's domain whose entries
        fill the columns with nothing observed (for the domain check only).

    Example:
      >>> import numpy as np, mixtures as mx
      >>> rows = incomplete_rows(np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 2.0]]), mx.Gaussian())
      >>> rows.filled.tolist(), rows.max_missing
      ([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]], 1)
    """
    x = checks.as_host_data(x, name, n_features, allow_missing=True)
    observed = ~np.isnan(x)
    never = np.flatnonzero(~observed.any(axis=0))
    if drop and never.size:
        raise ValueError(
            f"`{name}`: column {int(never[0])} has no observed entry (all NaN): nothing can be learnt of it; "
            "remove the column."
        )
    kept = observed.any(axis=1)
    if drop and not kept.all():
        empty = int(np.count_nonzero(~kept))
        warnings.warn(
            f"`{name}`: {empty} row{'s' if empty > 1 else ''} with no observed entry (all NaN) "
            f"count{'' if empty > 1 else 's'} for nothing and {'are' if empty > 1 else 'is'} left out of the fit.",
            stacklevel=3,
        )
        x, observed = x[kept], observed[kept]
    filled = median_filled(x, fill)
    if not np.isnan(filled).any():
        family.check_data(filled)
    return Incomplete(x, filled, kept if drop else np.ones(len(x), bool), max_missing(x))


def by_missing(x: np.ndarray) -> np.ndarray | None:
    """The order of the rows by their number of missing entries (stable), or None when none is missing.

    A fit visits its rows in blocks, and a family may size a block's work by
    the most entries its rows miss (the Gaussian does): sorted, most blocks
    hold rows that miss few. The order of the rows changes no sum but by
    rounding.

    Example:
      >>> import numpy as np
      >>> by_missing(np.array([[np.nan, np.nan], [1.0, np.nan], [1.0, 2.0]])).tolist()
      [2, 1, 0]
    """
    counts = np.sum(np.isnan(x), axis=1)
    if not counts.any():
        return None
    return np.argsort(counts, kind="stable")


def median_filled(x: np.ndarray, fallback=None) -> np.ndarray:
    """``x`` with each missing entry (NaN) set to its column's median observed value (the lower one of two).

    A column with nothing observed takes ``fallback[j]`` when given, else stays NaN.

    Example:
      >>> import numpy as np
      >>> median_filled(np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]]), fallback=[0.0, 7.0]).tolist()
      [[1.0, 7.0], [3.0, 7.0], [1.0, 7.0]]
    """
    observed = ~np.isnan(x)
    filled = x.copy()
    for j in np.flatnonzero(~observed.all(axis=0)):
        column = np.sort(x[observed[:, j], j])
        if column.size:
            filled[~observed[:, j], j] = column[(column.size - 1) // 2]
        elif fallback is not None:
            filled[:, j] = fallback[j]
    return filled


def without_empty_rows(x: np.ndarray, weights=None):
    """Row weights (``weights``, or ones) with 0 for the rows that observe nothing; ``weights`` itself when none does.

    Such rows count for nothing: in a sum over rows, and in N.

    Example:
      >>> import numpy as np
      >>> without_empty_rows(np.array([[1.0, np.nan], [np.nan, np.nan]])).tolist()
      [1.0, 0.0]
    """
    empty = np.all(np.isnan(x), axis=1)
    if not empty.any():
        return weights
    return np.where(empty, 0, 1 if weights is None else np.asarray(weights)).astype(x.dtype)

