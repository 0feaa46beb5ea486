"""Initialisation methods: pure functions of a PRNG key ("hc": of the data alone), run inside the compiled fit.

Every method places K components and refines them by one hard-assignment EM
step (:func:`mixtures.engine.init_from_points`), except "random", which takes
one M-step from random responsibilities as scikit-learn does, and "hc",
which takes one M-step from the one-hot responsibilities of a hierarchical
clustering as mclust does.

* "kmeans++": D² seeding (each new centre drawn with probability proportional
  to its squared distance to the nearest centre so far, times its row weight),
  then a few Lloyd iterations.
* "kmeans": the same seeding, then Lloyd's algorithm run to convergence
  (at most 100 iterations).
* "random": responsibilities drawn uniformly at random for every row and
  normalised, then one M-step.
* "random_from_data": K distinct rows drawn at random as the centres.
* "hc" (Gaussian families only): mclust's default start, its model-based
  hierarchical agglomeration (``hc(x, "VVV", use = "SVD")``) cut at K
  classes (``hclass``), then one M-step from those one-hot
  responsibilities. It does not use the key: every restart starts from the
  same mixture. The tree is built on the host before the compiled fit
  (:mod:`mixtures._src.fitting.hierarchical`): O(N² D³) time, O(N²)
  memory, about a second for 2000 rows of 8 features; for more than 2000
  rows it is built on 2000 evenly spaced rows, and the start is the M-step
  from their classes alone, as mclust's ``Mclust`` does on its subset (the
  first E-step of the fit then takes in every row).

K-means here is the library's own classification EM with
``Gaussian("identity")`` components and fixed equal weights, so it is chunked
and compiled like every fit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import numpy as np

from mixtures._src.core import blocks
from mixtures._src.core import checks
from mixtures._src.core.posterior import Sums
from mixtures._src.engine import em as engine
from mixtures._src.engine.options import EMOptions, Rows
from mixtures._src.families.gaussian.family import Gaussian, GaussianParams
from mixtures._src.core.mixture import Mixture
from mixtures._src.fitting import hierarchical

__all__ = [
    "INIT_METHODS", "check_method", "initialize", "kmeans_plus_plus", "lloyd", "nearest_rows", "tree_classes",
]

INIT_METHODS = ("kmeans++", "kmeans", "random", "random_from_data", "hc")
KMEANS_PLUS_PLUS_LLOYD_STEPS = 5
KMEANS_MAX_ITER = 100


def active_weights(k: int, n_active, dtype) -> jax.Array:
    """Equal weights over the first ``n_active`` of ``k`` components, zero for the rest.

    Example:
      >>> from mixtures._src.fitting.init import active_weights
      >>> active_weights(4, 2, "float32").tolist()
      [0.5, 0.5, 0.0, 0.0]
    """
    if n_active is None:
        return jnp.full((k,), 1.0 / k, dtype)
    on = jnp.arange(k) < n_active
    return jnp.where(on, 1.0 / n_active, 0.0).astype(dtype)


def kmeans_plus_plus(key, x, weights, k: int) -> jax.Array:
    """K centres by D² seeding (Arthur and Vassilvitskii, 2007).

    Args:
      key: a PRNG key.
      x: (N, D) data.
      weights: (N,) row weights or None.
      k: number of centres.

    Returns:
      (K, D) centres, rows of ``x``.

    Example:
      >>> import jax, numpy as np
      >>> from mixtures._src.fitting.init import kmeans_plus_plus
      >>> x = np.array([[0.0], [0.1], [10.0], [10.1]])
      >>> c = kmeans_plus_plus(jax.random.key(0), x, None, 2)
      >>> sorted(round(float(v)) for v in c[:, 0])
      [0, 10]
    """
    x = jnp.asarray(x)
    log_w = jnp.zeros(x.shape[:1], x.dtype) if weights is None else jnp.log(weights)
    keys = jax.random.split(key, k)
    first = x[jax.random.categorical(keys[0], log_w)]
    centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first[None, :]) ** 2, axis=1)

    def add(i, carry):
        centres, d2 = carry
        logits = jnp.where(d2 > 0, jnp.log(jnp.where(d2 > 0, d2, 1.0)) + log_w, -jnp.inf)
        logits = jnp.where(jnp.any(jnp.isfinite(logits)), logits, log_w)  # all points already centres
        c = x[jax.random.categorical(keys[i], logits)]
        return centres.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c[None, :]) ** 2, axis=1))

    centres, _ = jax.lax.fori_loop(1, k, add, (centres, d2))
    return centres


def lloyd(centres, x, weights, n_iter: int, chunk_size: int, n_active=None) -> jax.Array:
    """Lloyd's algorithm from ``centres`` for at most ``n_iter`` iterations.

    Args:
      centres: (K, D) starting centres.
      x: (N, D) data.
      weights: (N,) row weights or None.
      n_iter: maximum number of iterations; it stops earlier once the
        assignments repeat.
      chunk_size: rows per block.
      n_active: if given, only the first ``n_active`` centres are used.

    Returns:
      (K, D) centres.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.init import lloyd
      >>> x = np.array([[0.0], [1.0], [9.0], [11.0]])
      >>> lloyd(np.array([[0.0], [1.0]]), x, None, 10, 4).round(6).tolist()
      [[0.5], [10.0]]
    """
    k = centres.shape[0]
    family = Gaussian("identity", reg_covar=0.0)
    start = Mixture(active_weights(k, n_active, x.dtype), GaussianParams(centres, jnp.ones((k,), x.dtype)), family)
    tol = jnp.asarray(jnp.finfo(x.dtype).tiny, x.dtype)  # stop once the assignments repeat
    options = EMOptions(chunk_size=chunk_size, max_iter=n_iter, hard=True, update_weights=False)
    result = engine.fit_loop(start, Rows(x, weights), tol, options)
    return result.mixture.params.means


def start_key(key, method: str):
    """The checked PRNG key of a fit started by ``method``; with "hc", which draws nothing, None stands for a fixed key.

    Example:
      >>> import jax
      >>> from mixtures._src.fitting.init import start_key
      >>> start_key(None, "hc") == jax.random.key(0)
      Array(True, dtype=bool)
      >>> start_key(None, "kmeans++")
      Traceback (most recent call last):
      ...
      TypeError: `key` must be a JAX PRNG key such as jax.random.key(0): init='kmeans++' draws from it (only init='hc' and warm starts need none); received None.
    """
    if key is None:
        if method == "hc":
            return jax.random.key(0)
        raise TypeError(
            f"`key` must be a JAX PRNG key such as jax.random.key(0): init={method!r} draws from it "
            "(only init='hc' and warm starts need none); received None."
        )
    return checks.prng_key(key)


def check_method(method, family) -> None:
    """Raises ``ValueError`` unless ``method`` can initialise ``family`` (host-side, before tracing).

    Example:
      >>> import mixtures as mx
      >>> from mixtures._src.fitting.init import check_method
      >>> check_method("kmeans++", mx.StudentT())
      >>> check_method("random", mx.StudentT())
      Traceback (most recent call last):
      ...
      ValueError: `init='random'` needs an M-step from summed statistics, which StudentT does not have; use 'kmeans++', 'kmeans' or 'random_from_data'.
    """
    if not isinstance(method, str) or method not in INIT_METHODS:
        raise ValueError(f"`init` must be one of {INIT_METHODS}; received {method!r}.")
    if method == "random" and family.m_step_needs_data:
        raise ValueError(
            f"`init='random'` needs an M-step from summed statistics, which {type(family).__name__} "
            "does not have; use 'kmeans++', 'kmeans' or 'random_from_data'."
        )
    if method == "hc" and not isinstance(family, Gaussian):
        raise ValueError(
            f"`init='hc'` (mclust's Gaussian hierarchical agglomeration) starts Gaussian mixtures only; "
            f"received a {type(family).__name__} family. Use 'kmeans++', 'kmeans', 'random' or 'random_from_data'."
        )


def tree_classes(method: str, x, ks, weights=None):
    """The classes of ``init="hc"`` for each K of ``ks``, computed on the host; None for the other methods.

    Args:
      method: the initialisation method.
      x: (N, D) data (host or device array; it is copied to the host).
      ks: numbers of components.
      weights: optional (N,) row weights; rows of weight zero are not classed.

    Returns:
      None, or a (len(ks), N) int32 device array: each row's class 0..K−1,
      −1 for rows outside the tree (see :func:`~mixtures._src.fitting.hierarchical.classes`).

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.init import tree_classes
      >>> x = np.array([[0.0, 0.0], [5.0, 5.0], [0.2, 0.1], [5.1, 4.8], [0.1, 0.3]])
      >>> tree_classes("hc", x, [2, 3]).tolist(), tree_classes("kmeans++", x, [2])
      ([[0, 1, 0, 1, 0], [0, 1, 0, 2, 0]], None)
    """
    if method != "hc":
        return None
    host_weights = None if weights is None else np.asarray(weights)
    return jnp.asarray(hierarchical.classes(np.asarray(x), ks, host_weights))


def initialize(
    method: str, family, k: int, key, x, weights, chunk_size: int, labels=None, n_active=None, classes=None
) -> Mixture:
    """The starting mixture of one restart.

    Args:
      method: one of :data:`INIT_METHODS`.
      family: the component family.
      k: number of components K.
      key: a PRNG key; the result is a pure function of it.
      x: (N, D) data.
      weights: (N,) row weights or None.
      chunk_size: rows per block.
      labels: optional (N,) labels, −1 for unlabelled rows; a component with
        labelled rows is placed at their mean, and labelled rows are assigned
        to their class in the refining step.
      n_active: if given (possibly traced), only the first ``n_active``
        components are used; the others get weight zero and stay switched off.
      classes: for "hc" (and only then), the (N,) int32 class of every row,
        −1 for a row that takes no part, from :func:`tree_classes` (the
        tree is computed on the host, before the compiled start); the start
        is the M-step from these one-hot responsibilities, and ``key`` is
        not used.

    Returns:
      A :class:`~mixtures.Mixture` with K components.

    Example:
      >>> import jax, mixtures as mx
      >>> from mixtures._src.fitting.init import initialize
      >>> x = jax.numpy.asarray(mx.datasets.load_old_faithful())
      >>> m = initialize("kmeans++", mx.Gaussian(), 2, jax.random.key(0), x, None, 272)
      >>> sorted(m.params.means[:, 1].round().tolist())
      [55.0, 80.0]
      >>> classes = tree_classes("hc", x, [2])[0]  # mclust's start
      >>> m = initialize("hc", mx.Gaussian(), 2, None, x, None, 272, classes=classes)
      >>> m.params.means[:, 1].round().tolist(), m.weights.round(3).tolist()
      ([80.0, 55.0], [0.643, 0.357])
    """
    check_method(method, family)
    if (method == "hc") != (classes is not None):
        raise ValueError(
            "`classes` must be given for `method='hc'` (from tree_classes, on the host) and only then; "
            f"received method={method!r} and classes={'None' if classes is None else 'an array'}."
        )
    if method == "random":
        return _random_responsibilities(family, k, key, x, weights, chunk_size, n_active, labels)
    if method == "hc":
        if labels is not None:
            raise ValueError("`labels` cannot be combined with `method='hc'`, whose classes are the tree's.")
        return _class_responsibilities(family, k, x, weights, chunk_size, n_active, classes)
    if method == "random_from_data":
        p = None if weights is None else weights / jnp.sum(weights)
        points = x[jax.random.choice(key, x.shape[0], (k,), replace=False, p=p)]
    else:
        points = kmeans_plus_plus(key, x, weights, k)
        n_iter = KMEANS_PLUS_PLUS_LLOYD_STEPS if method == "kmeans++" else KMEANS_MAX_ITER
        points = lloyd(points, x, weights, n_iter, chunk_size, n_active)
    if labels is not None:
        points = _labelled_class_means(points, x, weights, labels)
    if method != "random_from_data" or labels is not None:
        # Centroids need not be valid observations (the mean of category codes
        # is no code): each component starts at the data row nearest its centre.
        points = nearest_rows(points, x, weights, chunk_size)
    return engine.init_from_points(
        family, points, Rows(x, weights, labels), EMOptions(chunk_size=chunk_size),
        initial_weights=active_weights(k, n_active, x.dtype),
    )


def nearest_rows(points, x, weights, chunk_size: int) -> jax.Array:
    """For each of K points (K, D), the row of ``x`` nearest to it (rows of zero weight excluded).

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.init import nearest_rows
      >>> x = np.array([[0.0], [1.0], [5.0]])
      >>> nearest_rows(np.array([[0.4], [3.9]]), x, None, 2).tolist()
      [[0.0], [5.0]]
    """
    x = jnp.asarray(x)
    n = x.shape[0]
    size = min(chunk_size, n)
    k = points.shape[0]

    def body(i, carry):
        best_d, best_row = carry
        start = jnp.minimum(i * size, n - size)
        rows = jax.lax.dynamic_slice_in_dim(x, start, size)
        d2 = jnp.sum((rows[:, None, :] - points[None, :, :]) ** 2, axis=-1)  # (B, K)
        if weights is not None:
            d2 = jnp.where(jax.lax.dynamic_slice_in_dim(weights, start, size)[:, None] > 0, d2, jnp.inf)
        j = jnp.argmin(d2, axis=0)
        d = jnp.take_along_axis(d2, j[None, :], axis=0)[0]
        closer = d < best_d
        return jnp.where(closer, d, best_d), jnp.where(closer[:, None], rows[j], best_row)

    init = (jnp.full((k,), jnp.inf, x.dtype), points.astype(x.dtype))
    return jax.lax.fori_loop(0, -(-n // size), body, init)[1]


def _labelled_class_means(points, x, weights, labels):
    """Replaces the point of every component that has labelled rows by their (weighted) mean."""
    k = points.shape[0]

    def block(rows, w, idx):
        member = jax.nn.one_hot(labels[idx], k, dtype=x.dtype) * w[:, None]  # label −1: a row of zeros
        return jnp.sum(member, axis=0), member.T @ rows

    counts, sums = blocks.sum_over_chunks(block, x, weights, min(x.shape[0], 4096))
    means = sums / jnp.maximum(counts, jnp.finfo(x.dtype).tiny)[:, None]
    return jnp.where((counts > 0)[:, None], means, points)


def _random_responsibilities(family, k, key, x, weights, chunk_size, n_active, labels):
    k_points, k_resp = jax.random.split(key)
    points = x[jax.random.choice(k_points, x.shape[0], (k,), replace=False)]
    start = Mixture(active_weights(k, n_active, x.dtype), family.init_params(points, x), family)
    on = start.weights > 0

    def responsibilities(idx):
        r = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(k_resp, i), (k,), x.dtype))(idx)
        r = jnp.where(on[None, :], r, 0.0)
        r = r / jnp.sum(r, axis=1, keepdims=True)
        if labels is not None:
            known = labels[idx] >= 0
            r = jnp.where(known[:, None], jax.nn.one_hot(labels[idx], k, dtype=x.dtype), r)
        return r

    return _m_step(start, responsibilities, x, weights, chunk_size)


def _class_responsibilities(family, k, x, weights, chunk_size, n_active, classes):
    """The M-step from one-hot responsibilities at ``classes`` (a row of class −1 counts for nothing)."""
    classes = jnp.asarray(classes, jnp.int32)
    # Each component's parameters are first centred at its class mean (the statistics are
    # accumulated about them); a component without rows keeps them, at the first row.
    points = _labelled_class_means(jnp.broadcast_to(x[0], (k, x.shape[1])), x, weights, classes)
    start = Mixture(active_weights(k, n_active, x.dtype), family.init_params(points, x), family)
    return _m_step(start, lambda idx: jax.nn.one_hot(classes[idx], k, dtype=x.dtype), x, weights, chunk_size)


def _m_step(start: Mixture, responsibilities, x, weights, chunk_size) -> Mixture:
    """One M-step from ``start`` with the responsibilities ``responsibilities(row_indices)`` (B, K) of each block."""

    def block(rows, w, idx):
        r = responsibilities(idx) * w[:, None]
        return jnp.sum(r, axis=0), start.family.accumulate(start.params, rows, r)

    counts, stats = blocks.sum_over_chunks(block, x, weights, chunk_size)
    return engine.maximize(start, Sums(counts, stats, jnp.zeros((), x.dtype)))
