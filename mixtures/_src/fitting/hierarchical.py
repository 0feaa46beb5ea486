"""Model-based hierarchical agglomeration, as R's mclust starts its EM: ``init="hc"``.

mclust's default start (``Mclust``, ``mclustBIC``) is the hierarchical
clustering ``hc(x, modelName = "VVV", use = "SVD")`` cut at K classes by
``hclass``. This module computes the same tree on the host, in NumPy float64:

* **Transform** (mclust's ``use = "SVD"``): every column is centred and
  divided by its standard deviation (divisor N − 1; constant columns are
  dropped), and the scaled data X (N × D) is rotated and partly whitened by
  its singular value decomposition X = U S Vᵀ: z = X V S^(−1/2). Directions
  with a numerically zero singular value are dropped too (mclust stops
  there with an error).
* **Agglomeration** (``hcVVV``, α = β = 1): it starts from singletons and
  repeatedly merges the two groups whose merger increases the
  classification criterion Σ_g n_g log(det(W_g / n_g) + β (tr W_g + α′) / n_g)
  least, W_g the scatter matrix of group g, α′ = α tr(W) / (N D) with W
  the scatter matrix of all of z (the determinant term counts only when
  n_g > D and n_g > 2). Ties go where mclust's Fortran sends them (the
  pair it scans last).
* **Cut** (``hclass``): the partition after N − K merges, classes numbered
  in the order their first row appears.

The cost is O(N²) pairs at the start and O(N) pairs per merge, each pair a
D × D determinant once the merged group has more than D rows: O(N² D³) in
all, a few seconds for N = 2000, D = 8. For N > :data:`SUBSET` rows the tree
is built on :data:`SUBSET` of them (as ``Mclust`` does on a random sample of
``mclust.options("subset")`` = 2000 rows), chosen deterministically: rows
⌊i N / SUBSET⌋, i = 0 … SUBSET − 1, evenly spaced through the data. Rows of
zero weight never take part.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SUBSET", "classes", "cut", "merges", "svd_transform"]

SUBSET = 2000


def svd_transform(x) -> np.ndarray:
    """mclust's ``use = "SVD"`` transform of (N, D) data: scaled, then z = X V S^(−1/2).

    Args:
      x: (N, D) data.

    Returns:
      (N, P) float64, P ≤ min(N, D): the columns of nonzero variance and the
      directions of nonzero singular value.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.hierarchical import svd_transform
      >>> z = svd_transform(np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 1.0]]))  # a constant column, dropped
      >>> z.shape, round(float(np.abs(z).max()), 6)
      ((3, 1), 0.917493)
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    sd = np.sqrt(np.sum(centred**2, axis=0) / max(n - 1, 1))
    keep = sd > 0
    scaled = centred[:, keep] / sd[keep]
    if scaled.shape[1] == 0:
        return scaled
    _, s, vt = np.linalg.svd(scaled, full_matrices=False)
    rank = s > s[0] * max(scaled.shape) * np.finfo(np.float64).eps
    return (scaled @ vt[rank].T) / np.sqrt(s[rank])


def merges(z, alpha: float = 1.0, beta: float = 1.0) -> np.ndarray:
    """The N − 1 merges of mclust's VVV agglomeration of the (N, P) rows ``z``, in order.

    Args:
      z: (N, P) data, already transformed (see :func:`svd_transform`).
      alpha, beta: mclust's ``hcVVV`` parameters (both 1 by default there).

    Returns:
      (N − 1, 2) int64: merge m joins the group whose smallest row is
      ``merges[m, 1]`` into the one whose smallest row is ``merges[m, 0]``
      (always the smaller of the two), as mclust's ``hc`` reports them.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.hierarchical import merges
      >>> merges(np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [10.0, 0.2]])).tolist()
      [[0, 2], [1, 3], [0, 1]]
    """
    z = np.asarray(z, np.float64)
    n, p = z.shape
    if n < 2:
        return np.zeros((0, 2), np.int64)
    alpha = max(alpha * float(np.sum((z - z.mean(axis=0)) ** 2)) / (n * max(p, 1)), np.finfo(np.float64).eps)
    tree = _Tree(z, alpha, beta)
    out = np.empty((n - 1, 2), np.int64)
    for m in range(n - 1):
        out[m] = tree.merge_best()
    return out


def cut(tree: np.ndarray, n: int, ks) -> np.ndarray:
    """The partitions of rows 0..n−1 into K classes for each K of ``ks``, as mclust's ``hclass``.

    Args:
      tree: (n − 1, 2) merges from :func:`merges`.
      n: number of rows.
      ks: numbers of classes, each in 1..n.

    Returns:
      (len(ks), n) int32 classes 0..K−1, numbered in the order of their
      first row.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.hierarchical import cut
      >>> cut(np.array([[0, 2], [1, 3], [0, 1]]), 4, [1, 2, 4]).tolist()
      [[0, 0, 0, 0], [0, 1, 0, 1], [0, 1, 2, 3]]
    """
    ks = [int(k) for k in ks]
    out = np.empty((len(ks), n), np.int32)
    group = np.arange(n)
    done = 0
    for k in sorted(set(ks), reverse=True):
        for i, j in tree[done : n - k]:
            group[group == j] = i
        done = n - k
        _, first, numbered = np.unique(group, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # classes by their first row
        for row, kk in enumerate(ks):
            if kk == k:
                out[row] = order[numbered]
    return out


def classes(x, ks, weights=None, subset: int | None = None) -> np.ndarray:
    """The ``init="hc"`` classes of every row of (N, D) ``x`` for each K of ``ks``.

    The tree is built from the rows of positive weight (all rows without
    ``weights``), or, when there are more than ``subset`` of them
    (:data:`SUBSET` by default), from ``subset`` of those evenly spaced
    through the data; the other rows get class −1.

    Args:
      x: (N, D) data.
      ks: numbers of classes, each at most the rows in the tree.
      weights: optional (N,) non-negative row weights; only whether a row's
        is positive matters.
      subset: the most rows the tree is built from.

    Returns:
      (len(ks), N) int32: each row's class 0..K−1, or −1.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.hierarchical import classes
      >>> x = np.array([[0.0, 0.0], [5.0, 5.0], [0.2, 0.1], [5.1, 4.8], [0.1, 0.3]])
      >>> classes(x, [2]).tolist()
      [[0, 1, 0, 1, 0]]
    """
    x = np.asarray(x, np.float64)
    subset = SUBSET if subset is None else subset
    rows = np.arange(x.shape[0]) if weights is None else np.flatnonzero(np.asarray(weights) > 0)
    if len(rows) > subset:
        rows = rows[(np.arange(subset) * len(rows)) // subset]
    out = np.full((len(ks), x.shape[0]), -1, np.int32)
    out[:, rows] = cut(merges(svd_transform(x[rows])), len(rows), ks)
    return out


class _Tree:
    """The agglomeration's state: the groups in slots 0..size−1 and the criterion's change for every pair.

    Slots follow mclust's bookkeeping, which decides ties: the merger of
    the pair (a, b), a < b, takes slot a and the last slot moves into b.
    ``gain[i, j]`` (i < j) is the change of the criterion if groups i and j
    merge; ``best[j]`` and ``best_row[j]`` are the least change over
    i < j and the largest i attaining it.
    """

    def __init__(self, z, alpha, beta):
        n, p = z.shape
        self.p, self.alpha, self.beta = p, alpha, beta
        self.size = n
        self.count = np.ones(n)
        self.mean = z.copy()
        self.scatter = np.zeros((n, p, p))
        self.trace = np.zeros(n)
        self.term = np.full(n, np.log(beta * alpha))
        self.label = np.arange(n)
        # Two singletons: n log(β (tr + α) / n) with n = 2 and tr = |(zᵢ − zⱼ) / √2|².
        half = np.empty((n, n))
        step = max(1, 2**20 // max(n * p, 1))
        for start in range(0, n, step):
            v = (z[start : start + step, None, :] - z[None, :, :]) * np.sqrt(0.5)
            half[start : start + step] = np.einsum("ijk,ijk->ij", v, v)
        self.gain = 2.0 * np.log(beta * (half + alpha) / 2.0) - (self.term[0] + self.term[0])
        self.best = np.full(n, np.inf)
        self.best_row = np.zeros(n, np.int64)
        self._refresh_columns(np.arange(1, n))

    def _criterion(self, count, trace, scatter):
        """Each group's term n log(det(W / n) + β (tr W + α) / n), (M,), from (M,) sizes and traces.

        ``scatter(mask)`` gives the (M′, P, P) scatter matrices W of the
        groups ``mask`` selects, those whose determinant counts.
        """
        spread = np.log(self.beta * (trace + self.alpha) / count)
        out = spread.copy()
        full = (count > self.p) & (count > 2) & (trace != 0)  # with tr W = 0, det W = 0
        if np.any(full):
            sign, logdet = np.linalg.slogdet(scatter(full) / count[full, None, None])
            out[full] = np.where(sign > 0, np.logaddexp(logdet, spread[full]), spread[full])
        return count * out

    def _refresh_columns(self, cols):
        """Recomputes ``best`` and ``best_row`` of columns ``cols`` from ``gain``."""
        if len(cols) == 0:
            return
        top = int(cols.max())
        block = self.gain[:top, cols].copy()
        block[np.arange(top)[:, None] >= cols[None, :]] = np.inf
        last = top - 1 - np.argmin(block[::-1], axis=0)  # the largest row attaining the minimum
        self.best[cols] = block[last, np.arange(len(cols))]
        self.best_row[cols] = last

    def merge_best(self):
        """Merges the pair of least gain (ties: mclust's last in its scan); returns their labels (smaller first)."""
        size = self.size
        best = self.best[1:size]
        b = size - 1 - int(np.argmin(best[::-1]))  # the last column attaining the minimum
        a = int(self.best_row[b])
        labels = sorted((int(self.label[a]), int(self.label[b])))
        self._merge(a, b)
        return labels

    def _merge(self, a, b):
        na, nb = self.count[a], self.count[b]
        n = na + nb
        v = self.mean[a] - self.mean[b]
        c = na * nb / n
        self.trace[a] = self.trace[a] + self.trace[b] + c * (v @ v)
        self.scatter[a] = self.scatter[a] + self.scatter[b] + c * np.outer(v, v)
        self.mean[a] = (na * self.mean[a] + nb * self.mean[b]) / n
        self.count[a] = n
        self.term[a] = self._criterion(np.array([n]), self.trace[a : a + 1], lambda _: self.scatter[a : a + 1])[0]
        self.label[a] = min(self.label[a], self.label[b])
        last = self.size - 1
        if b != last:  # the last group moves into slot b
            for field in (self.count, self.mean, self.scatter, self.trace, self.term, self.label):
                field[b] = field[last]
            self.gain[:b, b] = self.gain[:b, last]
            self.gain[b, b + 1 : last] = self.gain[b + 1 : last, last]
        self.size = size = last
        # The merged group's gain with every other.
        others = np.flatnonzero(np.arange(size) != a)
        gains = self._pair_gains(a, others)
        below, above = others < a, others > a
        self.gain[others[below], a] = gains[below]
        self.gain[a, others[above]] = gains[above]
        # Columns whose least gain may have changed.
        cols = np.arange(1, size)
        stale = (cols == a) | (cols == b) | np.isin(self.best_row[cols], (a, b))
        for row in (a, b):
            if row >= size:
                continue
            after = cols > row
            value = self.gain[row, cols]
            tie = (value == self.best[cols]) & (row > self.best_row[cols])  # the larger row wins a tie
            better = after & ~stale & ((value < self.best[cols]) | tie)
            self.best[cols[better]] = value[better]
            self.best_row[cols[better]] = row
        self._refresh_columns(cols[stale])

    def _pair_gains(self, a, others):
        """The change of the criterion if group ``a`` merged with each of ``others``, (M,)."""
        na, nj = self.count[a], self.count[others]
        n = na + nj
        v = self.mean[a][None, :] - self.mean[others]
        c = na * nj / n
        trace = self.trace[a] + self.trace[others] + c * np.sum(v * v, axis=1)

        def scatter(mask):
            w = v[mask]
            outer = c[mask, None, None] * w[:, :, None] * w[:, None, :]
            return self.scatter[a][None] + self.scatter[others[mask]] + outer

        return self._criterion(n, trace, scatter) - (self.term[a] + self.term[others])
