"""What a compiled EM program is built for: its static options in one value, its per-row arrays in one pytree."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from mixtures._src.core.blocks import Axes

__all__ = ["DEFAULT_TOL", "EMOptions", "FAST_MODES", "Rows"]

DEFAULT_TOL = 1e-5
"""The fitting functions' default ``tol``: within 10⁻⁶ per row of the optimum on the docs' examples (docs/numerics.md)."""

FAST_MODES = ("auto", "always", "never")


class Rows(NamedTuple):
    """The per-row arrays of a fit (a pytree): data, row weights and labels.

    Attributes:
      x: (N, D) data in the compute dtype.
      weights: (N,) non-negative row weights, or None for all ones.
      labels: (N,) int32 component of each labelled row, −1 for unlabelled
        rows, or None.
    """

    x: jax.Array
    weights: jax.Array | None = None
    labels: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class EMOptions:
    """The static options of a compiled EM program (hashable: part of its compile key).

    Attributes:
      chunk_size: rows per block of the E-step and accumulation.
      max_iter: the most EM iterations :func:`~mixtures.engine.fit_loop` runs.
      hard: classification EM (one-hot argmax responsibilities).
      update_weights: whether the M-step updates the mixing weights.
      report: whether the loop reports every iteration to the host (see
        :func:`~mixtures.engine.fit_loop`).
      fast: whether the family's :meth:`~mixtures.Family.fast_sums` is used:
        "auto" (the family decides), "always" (its fastest accurate path at
        any size) or "never" (the engine's generic pass).
      axes: the named axes the program is traced under (restarts side by
        side, rows split over devices).
      missing: 0 for complete rows; otherwise the rows hold NaN at missing
        entries and this is at least the number of missing entries of any
        row (the family's observed-entry hooks are used, see
        :attr:`~mixtures.Family.handles_missing`).

    Example:
      >>> from mixtures.engine import EMOptions
      >>> EMOptions(chunk_size=256, hard=True).max_iter
      100
    """

    chunk_size: int
    max_iter: int = 100
    hard: bool = False
    update_weights: bool = True
    report: bool = False
    fast: str = "auto"
    axes: Axes = Axes()
    missing: int = 0

    def __post_init__(self):
        for name in ("chunk_size", "max_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
        for name in ("hard", "update_weights", "report"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be True or False; received {getattr(self, name)!r}.")
        if isinstance(self.missing, bool) or not isinstance(self.missing, int) or self.missing < 0:
            raise ValueError(f"`missing` must be a non-negative int; received {self.missing!r}.")
        if self.fast not in FAST_MODES:
            raise ValueError(f"`fast` must be one of {FAST_MODES}; received {self.fast!r}.")
        if not isinstance(self.axes, Axes):
            raise TypeError(f"`axes` must be an Axes; received {self.axes!r}.")

    def replace(self, **changes) -> EMOptions:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
