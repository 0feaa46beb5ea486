"""Data sets shipped with the library."""

from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np

__all__ = ["load_old_faithful", "OLD_FAITHFUL_COLUMNS"]

OLD_FAITHFUL_COLUMNS = ("eruptions", "waiting")


def load_old_faithful() -> np.ndarray:
    """The Old Faithful geyser data: 272 eruptions, two columns.

    Column 0 is the eruption length and column 1 the waiting time to the next
    eruption, both in minutes (R's ``faithful``; Härdle 1991, Azzalini and
    Bowman 1990). The classic two-cluster example.

    Returns:
      A float64 NumPy array of shape (272, 2).

    Example:
      >>> import mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> x.shape, x.mean(axis=0).round(3).tolist()
      ((272, 2), [3.488, 70.897])
    """
    text = resources.files("mixtures").joinpath("data/old_faithful.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    if tuple(rows[0]) != OLD_FAITHFUL_COLUMNS:
        raise RuntimeError(f"old_faithful.csv has header {rows[0]}, expected {OLD_FAITHFUL_COLUMNS}")
    return np.array(rows[1:], dtype=np.float64)
