"""``fit``: host-side validation, initialisation, and one compiled EM program."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mixtures import _checks, _chunks, engine
from mixtures.family import Family
from mixtures.mixture import Mixture

__all__ = ["fit", "INIT_METHODS"]

INIT_METHODS = ("random_from_data",)
ASSIGNMENTS = ("soft", "hard")


def fit(
    x,
    family: Family,
    n_components: int,
    *,
    key,
    init="random_from_data",
    max_iter: int = 100,
    tol: float = 1e-3,
    sample_weight=None,
    assignment: str = "soft",
    update_weights: bool = True,
    chunk_size: int | None = None,
) -> engine.FitResult:
    """Fits a K-component mixture of ``family`` to ``x`` by EM.

    Initialisation, the EM loop and the final log-likelihood are one compiled
    program. Data is used in its own floating dtype: float32, or float64 when
    JAX's x64 mode is on (``jax.config.update("jax_enable_x64", True)``);
    integer data is converted to the default float dtype.

    Args:
      x: (N, D) array-like of real numbers.
      family: the component family, e.g. ``mx.Gaussian("full")``.
      n_components: number of components K, 1 ≤ K ≤ N.
      key: a JAX PRNG key (``jax.random.key(seed)``); may be None only when
        ``init`` is a :class:`~mixtures.Mixture`.
      init: "random_from_data" (K distinct rows drawn at random, then one
        hard-assignment EM step), or a :class:`~mixtures.Mixture` to start
        from (a warm start).
      max_iter: maximum number of EM iterations.
      tol: stop when the mean log-likelihood per sample changes by less than
        this between iterations.
      sample_weight: optional (N,) non-negative row weights.
      assignment: "soft" (EM) or "hard" (classification EM: each row is
        assigned wholly to its most probable component; with
        ``mx.Gaussian("identity")`` and ``update_weights=False`` this is
        Lloyd's K-means algorithm). With "hard", ``log_likelihood`` and
        ``history`` are the complete-data log-likelihood of the assignments.
      update_weights: if False the mixing weights stay at their initial
        values (equal, 1/K, unless ``init`` is a mixture).
      chunk_size: rows per block of the E-step and accumulation (memory
        O(chunk_size × K × D)); default chosen from K and D.

    Returns:
      A :class:`~mixtures.FitResult`.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> result = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0))
      >>> result.mixture.weights.shape, result.mixture.params.means.shape
      ((2,), (2, 2))
      >>> bool(result.converged)
      True
    """
    if not isinstance(family, Family):
        raise TypeError(
            f"`family` must be a mixtures.Family such as mx.Gaussian(); received {family!r}."
        )
    x = _checks.as_data(x, "x")
    if _checks.is_traced(x):
        raise TypeError("`x` must be a concrete array: mx.fit validates on the host and cannot be traced.")
    n, d = x.shape
    family.check_data(np.asarray(x))
    k = _checks.positive_int(n_components, "n_components", upper=n, upper_name="the number of samples N")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    tol = _checks.non_negative_float(tol, "tol")
    chunk = (
        _chunks.default_chunk_size(k, d)
        if chunk_size is None
        else _checks.positive_int(chunk_size, "chunk_size")
    )
    weights = _checks.as_sample_weight(sample_weight, n)
    if weights is not None:
        n_positive = int(np.count_nonzero(np.asarray(weights) > 0))
        if k > n_positive:
            raise ValueError(
                f"`n_components` ({k}) must be at most the number of rows with positive "
                f"`sample_weight` ({n_positive})."
            )
        weights = jnp.asarray(weights, x.dtype)
    tol = jnp.asarray(tol, x.dtype)
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"`assignment` must be one of {ASSIGNMENTS}; received {assignment!r}.")
    if not isinstance(update_weights, bool):
        raise TypeError(f"`update_weights` must be True or False; received {update_weights!r}.")
    options = (max_iter, chunk, assignment == "hard", update_weights)

    if isinstance(init, Mixture):
        start = _check_warm_start(init, family, k, d, x.dtype)
        return _fit_from(start, x, weights, tol, *options)
    if isinstance(init, str) and init in INIT_METHODS:
        key = _checks.prng_key(key)
        return _fit_random(family, k, key, x, weights, tol, *options)
    raise ValueError(f"`init` must be one of {INIT_METHODS} or a mixtures.Mixture; received {init!r}.")


def _check_warm_start(init: Mixture, family, k, d, dtype) -> Mixture:
    if init.family != family:
        raise ValueError(f"`init` is a mixture of {init.family!r}, but `family` is {family!r}.")
    if init.n_components != k:
        raise ValueError(f"`init` has {init.n_components} components, but n_components={k}.")
    if init.n_features != d:
        raise ValueError(f"`init` has {init.n_features} features, but `x` has {d}.")
    weights = np.asarray(init.weights, dtype=np.float64)
    if weights.shape != (k,) or np.any(~np.isfinite(weights)) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=1e-5):
        raise ValueError(f"`init.weights` must be {k} non-negative numbers summing to 1; received {weights}.")
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), init)


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _fit_from(mixture, x, weights, tol, max_iter, chunk_size, hard, update_weights):
    return engine.fit_loop(mixture, x, weights, tol, max_iter, chunk_size, hard, update_weights)


@functools.partial(jax.jit, static_argnums=(0, 1, 6, 7, 8, 9))
def _fit_random(family, k, key, x, weights, tol, max_iter, chunk_size, hard, update_weights):
    start = init_random_from_data(family, k, key, x, weights, chunk_size)
    if not update_weights:
        start = Mixture(jnp.full((k,), 1.0 / k, x.dtype), start.params, family)
    return engine.fit_loop(start, x, weights, tol, max_iter, chunk_size, hard, update_weights)


def init_random_from_data(family, k: int, key, x, weights, chunk_size: int) -> Mixture:
    """K distinct rows drawn uniformly (rows of zero weight never), then one hard EM step."""
    p = None if weights is None else weights / jnp.sum(weights)
    idx = jax.random.choice(key, x.shape[0], (k,), replace=False, p=p)
    return engine.init_from_points(family, x[idx], x, weights, chunk_size)
