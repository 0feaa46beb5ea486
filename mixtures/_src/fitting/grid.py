"""A criterion of every candidate of :func:`mixtures.select` as a K × model matrix, printed as mclust prints BIC."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["GRID_CRITERIA", "SelectionGrid", "criterion_grid"]

GRID_CRITERIA = ("bic", "aic", "icl", "bic_mclust")

_TITLES = {
    "bic": "BIC, lower is better",
    "aic": "AIC, lower is better",
    "icl": "ICL, lower is better",
    "bic_mclust": "BIC with mclust's sign (2 log L - p log N), higher is better",
}


class SelectionGrid(NamedTuple):
    """One criterion of every candidate of :func:`mixtures.select`: K down the rows, the models across.

    The layout of mclust's BIC table: ``values[i, j]`` is the criterion of
    ``models[j]`` with ``n_components[i]`` components. ``str(grid)`` renders
    it as text with the best cell marked ``*``.

    Attributes:
      values: (len(n_components), len(models)) float64 array; NaN where the
        table has no such candidate (or its criterion is NaN).
      n_components: the row labels, the candidate K ascending.
      models: the column labels, one per family in the order of the table:
        the covariance model name of a Gaussian (``"full"``, ``"VEV"``, …),
        :meth:`~mixtures.Family.label` of another family, the family's
        ``repr`` where two labels would be equal.
      criterion: "bic", "aic", "icl" (lower is better) or "bic_mclust"
        (2 log L − p log N = −BIC, higher is better).
      best: (row, column) of the best cell; ties go to the earlier model,
        then the smaller K, as :func:`mixtures.select` breaks them.
      converged: None, or a bool array of ``values``' shape, False where the
        candidate's EM stopped at ``max_iter`` before converging; ``str``
        marks such cells ``!`` (mclust's table has no such cells: it runs
        EM to its tolerance).

    Example:
      >>> import numpy as np
      >>> from mixtures import SelectionGrid
      >>> grid = SelectionGrid(np.array([[2607.62, 2607.62], [2325.22, 2322.19], [2314.30, 2333.73]]),
      ...                      (1, 2, 3), ("tied", "full"), "bic", (2, 0))
      >>> print(grid)
      BIC, lower is better; * the best: tied with K = 3
       K       tied      full
       1   2607.620  2607.620
       2   2325.220  2322.190
       3   2314.300* 2333.730
    """

    values: np.ndarray
    n_components: tuple
    models: tuple
    criterion: str
    best: tuple
    converged: np.ndarray | None = None

    def __str__(self) -> str:
        best_row, best_col = self.best
        stopped = np.zeros(self.values.shape, bool) if self.converged is None else ~np.asarray(self.converged, bool)
        title = _TITLES.get(self.criterion, self.criterion)
        title += f"; * the best: {self.models[best_col]} with K = {self.n_components[best_row]}"
        if stopped[best_row, best_col]:
            title += " (not converged)"
        if stopped.any():
            title += "; ! not converged within max_iter"
        cells = [[_number(v) for v in line] for line in self.values]
        labels = [str(m) for m in self.models]
        widths = [2 + max(len(label), *(len(line[j]) for line in cells)) for j, label in enumerate(labels)]
        k_width = 1 + max(len(str(k)) for k in self.n_components)
        lines = [title, (f"{'K':>{k_width}}" + "".join(f"{m:>{w}} " for m, w in zip(labels, widths))).rstrip()]
        for i, k in enumerate(self.n_components):
            marks = ["*" if (i, j) == self.best else "!" if stopped[i, j] else " " for j in range(len(labels))]
            line = "".join(f"{c:>{w}}{m}" for c, w, m in zip(cells[i], widths, marks))
            lines.append((f"{k:>{k_width}}" + line).rstrip())
        return "\n".join(lines)


def _number(v: float) -> str:
    return "" if np.isnan(v) else f"{v:.3f}"


def criterion_grid(table: list, criterion: str) -> SelectionGrid:
    """``criterion`` of the rows of a :class:`~mixtures.Selection` table as a :class:`SelectionGrid`.

    Args:
      table: the selection's table: dicts with ``family``, ``n_components``,
        the criterion and optionally ``model``; the columns follow the
        families in order of first appearance.
      criterion: one of :data:`GRID_CRITERIA`.
    """
    first = {}
    for row in table:
        first.setdefault(row["family"], row)
    families = list(first)
    labels = [row.get("model") or row["family"].label() for row in first.values()]
    ks = sorted({row["n_components"] for row in table})
    values = np.full((len(ks), len(families)), np.nan)
    converged = np.ones(values.shape, bool)  # a cell without a candidate has nothing to flag
    for row in table:
        cell = ks.index(row["n_components"]), families.index(row["family"])
        values[cell] = row[criterion]
        converged[cell] = row.get("converged", True)
    if len(set(labels)) < len(labels):
        labels = [repr(f) for f in families]
    # Best: the lowest (highest for mclust's sign), scanning each model's K in turn, NaN never.
    signed = -values if criterion == "bic_mclust" else values
    order = np.where(np.isnan(signed), np.inf, signed).T.ravel()
    col, row = divmod(int(np.argmin(order)), len(ks))
    return SelectionGrid(values, tuple(ks), tuple(labels), criterion, (row, col), converged)
