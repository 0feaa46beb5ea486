"""Model selection: fit every candidate number of components and family, rank them by BIC, AIC or ICL.

The families are given as instances, or as the class :class:`~mixtures.Gaussian`
with ``models=`` naming its covariance models (``"all"``: every one,
:mod:`mixtures._src.fitting.models`).

For one family, every candidate K is fitted in one batch of compiled programs: the
mixture is padded to K_max = max(n_components) components, candidate K
switches off components K…K_max−1 (weight zero, see
:func:`mixtures.init.initialize`), and ``jax.vmap`` runs the candidates ×
restarts as one batch. Each candidate's best restart is then sliced, on the
host, to its K active components.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.engine import em as engine
from mixtures._src.engine.em import FitResult
from mixtures._src.core.family import Family
from mixtures._src.families.gaussian.family import Gaussian
from mixtures._src.fitting import segments
from mixtures._src.fitting.grid import GRID_CRITERIA, SelectionGrid, criterion_grid
from mixtures._src.fitting.models import model_families, model_name
from mixtures._src.fitting.fit import best_restart, start_restart
from mixtures._src.core.incomplete import by_missing, check_missing, incomplete_rows, row_width
from mixtures._src.fitting.init import INIT_METHODS, check_method, start_key, tree_classes
from mixtures._src.engine.options import DEFAULT_TOL, EMOptions, Rows
from mixtures._src.core.mixture import Mixture, information_criteria, log_likelihood_and_entropy

__all__ = ["CRITERIA", "Selection", "SelectionGrid", "select"]

CRITERIA = ("bic", "aic", "icl")


class Selection(NamedTuple):
    """What :func:`select` returns.

    Attributes:
      best: the chosen candidate's :class:`~mixtures.FitResult`, its mixture
        with exactly ``n_components`` components.
      n_components: the chosen number of components K.
      family: the chosen family.
      criterion: the criterion that chose it ("bic", "aic" or "icl").
      table: one dict per candidate, families in the order given and K
        ascending within each, with keys ``family``, ``model`` (a
        Gaussian's covariance model name, ``family.covariance``; None for
        other families), ``n_components``, ``log_likelihood`` (mean per
        sample, as in ``FitResult``), ``n_parameters``, ``bic``, ``aic``,
        ``icl`` (lower is better), ``bic_mclust`` (−``bic``, the sign mclust
        uses: 2 log L − p log N, higher is better), ``converged`` and
        ``n_iter`` (of the best restart), as Python values.
      results: every candidate's ``FitResult`` (sliced to its K components),
        in the order of ``table``.
    """

    best: FitResult
    n_components: int
    family: Family
    criterion: str
    table: list
    results: list

    def grid(self, criterion: str | None = None) -> SelectionGrid:
        """A criterion of every candidate as a K × model matrix, as mclust's BIC table; ``str()`` prints it.

        Args:
          criterion: "bic", "aic", "icl" (lower is better) or "bic_mclust"
            (−BIC, higher is better, the numbers mclust prints); by default
            the criterion that chose.

        Returns:
          A :class:`SelectionGrid`: ``values[i, j]`` is the criterion of
          model ``models[j]`` with ``n_components[i]`` components, ``best``
          the (row, column) of the best cell.

        Example:
          >>> import jax, mixtures as mx
          >>> x = mx.datasets.load_old_faithful()
          >>> s = mx.select(x, mx.Gaussian, [1, 2], models=["spherical", "full"], key=jax.random.key(0))
          >>> grid = s.grid()
          >>> grid.values.shape, grid.n_components, grid.best
          ((2, 2), (1, 2), (1, 1))
          >>> bool((s.grid("bic_mclust").values == -grid.values).all())
          True
          >>> print(grid)  # doctest: +SKIP
          BIC, lower is better; * the best: full with K = 2
           K  spherical       full
           1   4024.721   2607.622
           2   3458.299   2322.192*
        """
        criterion = self.criterion if criterion is None else criterion
        if not isinstance(criterion, str) or criterion not in GRID_CRITERIA:
            raise ValueError(f"`criterion` must be one of {GRID_CRITERIA}; received {criterion!r}.")
        return criterion_grid(self.table, criterion)


def select(
    x,
    family,
    n_components=range(1, 11),
    *,
    key=None,
    models=None,
    n_init: int = 1,
    criterion: str = "bic",
    init: str = "kmeans++",
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    sample_weight=None,
    chunk_size: int | None = None,
    missing: str | None = None,
) -> Selection:
    """Fits every candidate (family, K) and returns the one with the lowest criterion.

    Per family, all candidates and restarts run side by side in one batch
    (padded to K_max = max(n_components) components, under ``jax.vmap``);
    each candidate keeps its best restart, as in :func:`mixtures.fit`. The
    criteria count only the active components of each candidate: see
    :meth:`~mixtures.Mixture.bic`, :meth:`~mixtures.Mixture.aic` and
    :meth:`~mixtures.Mixture.icl`. Every candidate costs as much compute as
    a K_max-component fit.

    To compare covariance models, pass the class :class:`~mixtures.Gaussian`
    and name them: ``select(x, mx.Gaussian, models="all", ...)`` fits every
    model of ``Gaussian.MODELS`` (mclust's "EII" … "VVV") for every K, each
    model as ``mx.Gaussian(covariance=m)``: the grid of mclust's
    ``mclustBIC``. :meth:`Selection.grid` gives it back as a K × model matrix.

    Args:
      x: (N, D) array-like data.
      family: a :class:`~mixtures.Family`, or a sequence of them (e.g.
        several Gaussian covariance types), all compared on one scale; or
        the class :class:`~mixtures.Gaussian`, with ``models``.
      n_components: a non-empty iterable of distinct positive integers,
        each at most N (and at most the number of rows with positive
        ``sample_weight``).
      key: a JAX PRNG key; candidate i, restart j uses
        ``jax.random.split(key, (C, n_init))[i, j]`` (C candidates, sorted),
        the same keys for every family. May be None (the default) only with
        ``init="hc"``, which draws nothing.
      models: only with ``family=mx.Gaussian`` (the class): "all", or a list
        of distinct covariance model names the Gaussian accepts ("VVV",
        "full", ...), each fitted as ``mx.Gaussian(covariance=m)`` (default
        ``reg_covar``), in the order given. For other options, pass a list
        of Gaussian instances instead.
      n_init: restarts R per candidate.
      criterion: "bic", "aic" or "icl" (lower is better; mclust's BIC is
        the negative, in the table as ``bic_mclust``); ties go to the earlier
        family and the smaller K.
      init: an initialisation method of :func:`mixtures.fit`. With "hc"
        one hierarchical clustering is computed and cut at every candidate
        K (so each candidate's start is mclust's), and every restart of a
        candidate starts alike.
      max_iter: maximum EM iterations per fit.
      tol: convergence threshold on the mean log-likelihood per sample.
      sample_weight: optional (N,) non-negative row weights; N in the BIC is
        then Σₙ wₙ.
      chunk_size: rows per block; by default chosen so that the batched
        (C·R, rows, K_max, D) temporaries hold about 2²⁰ elements.
      missing: None (NaN refused) or "marginalize": NaN marks a missing
        entry and every candidate is fitted on each row's observed entries,
        as :func:`mixtures.fit` does; the criteria use the observed-data
        log-likelihood, and N is the number of rows with an observed entry.

    Interrupting:
      As in :func:`mixtures.fit`, the iterations run as compiled calls of
      about a quarter of a second each: Ctrl-C raises ``KeyboardInterrupt``
      between them, with a note saying how many iterations ran. Each
      candidate's ``history`` holds one value per iteration it ran.

    Returns:
      A :class:`Selection`.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> from mixtures import select
      >>> s = select(x, mx.Gaussian("full"), range(1, 4), key=jax.random.key(0))
      >>> s.n_components, s.best.mixture.weights.shape, len(s.table)
      (2, (2,), 3)
      >>> s = select(x, mx.Gaussian, [2, 3], models=["tied", "full"], key=jax.random.key(0))
      >>> s.family == mx.Gaussian("tied"), s.n_components, len(s.table)
      (True, 3, 4)
    """
    families = _as_families(family, models)
    if not isinstance(criterion, str):
        raise TypeError(f"`criterion` must be one of {CRITERIA}; received {criterion!r}.")
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {CRITERIA}; received {criterion!r}.")
    if not isinstance(init, str):
        raise TypeError(
            f"`init` must be one of {INIT_METHODS} (select has no warm start: it fits many K); received {init!r}."
        )
    for f in families:
        check_method(init, f)
    incomplete = None
    if any(check_missing(missing, f) for f in families):
        if checks.is_traced(x):
            raise TypeError("`x` must be a concrete array: mx.select validates on the host and cannot be traced.")
        n_given = np.shape(x)[0] if np.ndim(x) == 2 else None
        incomplete = incomplete_rows(x, families[0])
        for f in families[1:]:
            f.check_data(incomplete.filled)
        order = by_missing(incomplete.x)  # rows by their number of missing entries, as mx.fit sorts them
        if order is not None:
            incomplete = incomplete._replace(x=incomplete.x[order], filled=incomplete.filled[order])
        x = checks.to_device(incomplete.x)
    else:
        x = checks.as_data(x, "x")
    if checks.is_traced(x):
        raise TypeError("`x` must be a concrete array: mx.select validates on the host and cannot be traced.")
    n, d = x.shape
    if incomplete is None:
        weights = checks.as_sample_weight(sample_weight, n)
    else:
        weights = checks.as_sample_weight(sample_weight, n_given)
        weights = None if weights is None else np.asarray(weights)[incomplete.kept]
        weights = weights if weights is None or order is None else weights[order]
    if weights is None:
        upper, upper_name, n_samples = n, "the number of samples N", float(n)
    else:
        weights = np.asarray(weights, np.float64)
        upper = int(np.count_nonzero(weights > 0))
        upper_name, n_samples = "the number of rows with positive `sample_weight`", float(weights.sum())
    ks = _as_n_components(n_components, upper, upper_name)
    n_init = checks.positive_int(n_init, "n_init")
    max_iter = checks.max_iter(max_iter)
    tol = checks.non_negative_float(tol, "tol")
    key = start_key(key, init)
    k_max = max(ks)
    max_missing = 0 if incomplete is None else incomplete.max_missing
    if chunk_size is None:
        chunk = blocks.default_chunk_size(k_max * len(ks) * n_init, row_width(d, max_missing))
    else:
        chunk = checks.positive_int(chunk_size, "chunk_size")
    checks.restarts_fit_in_memory(  # every candidate's restarts run side by side
        n_init * len(ks), n_components=k_max, n_features=d, history=min(max_iter, segments.SEGMENT), chunk_size=chunk,
        n_rows=x.shape[0], itemsize=np.dtype(x.dtype).itemsize, name=f"`n_init` × {len(ks)} candidates",
    )
    # With missing entries the initialisation and the checks see the filled rows, the EM iterations x.
    host_x = np.asarray(x) if incomplete is None else incomplete.filled
    if incomplete is None:
        for f in families:
            f.check_data(host_x)

    for f in families:
        f.check_methods(host_x)  # last, as it evaluates the family's own methods

    # Everything is valid: only now are arrays made for the compiled programs.
    classes = tree_classes(init, host_x, ks, weights)  # (C, N) for "hc": one tree, cut at every K
    tol = checks.to_device(tol, x.dtype)
    keys = jax.random.split(key, (len(ks), n_init))
    fit_weights = checks.unit_mean_weights(weights, x.dtype)
    if weights is not None:
        weights = checks.to_device(weights, x.dtype)

    n_active = checks.to_device(ks, np.int32)
    table, results = [], []
    # ``max_iter`` is the host loop's (segments.run), not part of the compiled programs.
    options = EMOptions(chunk_size=chunk, missing=max_missing)
    x_init = x if incomplete is None else checks.to_device(incomplete.filled)
    for f in families:
        begin = functools.partial(
            _start_candidates, keys, n_active, classes, x_init, fit_weights, family=f, k_max=k_max, method=init,
            options=options.replace(missing=0),
        )

        def advance(states, first, until):
            return _advance_candidates(states, x, fit_weights, tol, first, until, options=options)

        states, history = segments.run(begin, advance, max_iter=max_iter, what="mx.select")
        fitted, best, log_l, entropy = jax.device_get(
            _finish_candidates(states, x, fit_weights, weights, tol, options=options)
        )
        for i, k in enumerate(ks):
            result = _candidate(fitted, i, k)
            result = result._replace(history=checks.to_device(history[i, best[i], : int(result.n_iter)], x.dtype))
            n_parameters = result.mixture.n_parameters
            bic, aic, icl = (
                float(c) for c in information_criteria(log_l[i], entropy[i], np.float64(n_samples), n_parameters)
            )
            results.append(result)
            table.append(
                {
                    "family": f,
                    "model": model_name(f),
                    "n_components": k,
                    "log_likelihood": float(result.log_likelihood),
                    "n_parameters": n_parameters,
                    "bic": bic,
                    "aic": aic,
                    "icl": icl,
                    "bic_mclust": -bic,
                    "converged": bool(result.converged),
                    "n_iter": int(result.n_iter),
                }
            )
    scores = np.array([row[criterion] for row in table])
    chosen = int(np.argmin(np.where(np.isnan(scores), np.inf, scores)))
    row = table[chosen]
    return Selection(results[chosen], row["n_components"], row["family"], criterion, table, results)


def _as_families(family, models) -> tuple[Family, ...]:
    if models is not None:
        return model_families(family, models)
    if isinstance(family, type):
        name = f"mx.{family.__name__}"
        fix = (
            f'models="all" (or a list such as models=["full", "diag"]) to compare its covariance models, or an '
            f'instance such as {name}("full")' if issubclass(family, Gaussian) else f"an instance such as {name}()"
        )
        raise TypeError(
            "`family` must be a mixtures.Family such as mx.Gaussian(), or a sequence of them; "
            f"received the class {name}: pass {fix}."
        )
    if isinstance(family, Family):
        checks.hashable_family(family)
        return (family,)
    if isinstance(family, (str, bytes)) or not isinstance(family, Iterable):
        raise TypeError(
            "`family` must be a mixtures.Family such as mx.Gaussian(), or a sequence of them; "
            f"received {family!r}."
        )
    families = tuple(family)
    if not families:
        raise ValueError("`family` must hold at least one mixtures.Family; received an empty sequence.")
    for i, f in enumerate(families):
        if not isinstance(f, Family):
            raise TypeError(f"`family[{i}]` must be a mixtures.Family such as mx.Gaussian(); received {f!r}.")
        checks.hashable_family(f, f"family[{i}]")
        if f in families[:i]:
            raise ValueError(f"`family` lists {f!r} twice (at {families.index(f)} and {i}); give each once.")
    return families


def _as_n_components(value, upper: int, upper_name: str) -> list[int]:
    if isinstance(value, (str, bytes, numbers.Number)) or not isinstance(value, Iterable):
        raise TypeError(
            "`n_components` must be an iterable of positive integers such as range(1, 11) "
            f"(for a single K, [K]); received {value!r}."
        )
    ks = [checks.positive_int(k, f"n_components[{i}]", upper=upper, upper_name=upper_name) for i, k in enumerate(value)]
    if not ks:
        raise ValueError("`n_components` must hold at least one candidate number of components; received none.")
    repeated = sorted({k for k in ks if ks.count(k) > 1})
    if repeated:
        raise ValueError(f"`n_components` must not repeat a value; received {list(value)!r}, repeating {repeated}.")
    return sorted(ks)


@functools.partial(jax.jit, static_argnames=("family", "k_max", "method", "options"))
def _start_candidates(keys, n_active, classes, x, fit_weights, *, family, k_max, method, options):
    """(C, R) loop states of the padded fits: candidate c's restarts start with K = ``n_active[c]`` components on.

    The fits use the weights rescaled to mean one. ``classes`` (C, N): for
    "hc", candidate c's classes of the rows; else None.
    """
    rows = Rows(x, fit_weights)

    def restart(axes, key, k, classes_k):
        return engine.start_loop(
            start_restart(family, k_max, method, key, rows, options.replace(axes=axes), n_active=k, classes=classes_k)
        )

    def candidate(axes, keys_k, k, classes_k):
        return blocks.vmap_restarts(restart, axes, in_axes=(0, None, None))(keys_k, k, classes_k)

    return blocks.vmap_restarts(candidate, options.axes)(keys, n_active, classes)


@functools.partial(jax.jit, static_argnames="options")
def _advance_candidates(states, x, fit_weights, tol, first, until, *, options):
    """One segment of EM iterations for the (C, R) states, run as one batch of C·R restarts."""
    c, r = states.n_iter.shape
    flat = jax.tree.map(lambda a: a.reshape((c * r,) + a.shape[2:]), states)
    flat, history, going, reached = segments.advance_all(
        flat, Rows(x, fit_weights), tol, options, first=first, until=until
    )
    states = jax.tree.map(lambda a: a.reshape((c, r) + a.shape[1:]), flat)
    return states, history.reshape(c, r, -1), going, reached


@functools.partial(jax.jit, static_argnames="options")
def _finish_candidates(states, x, fit_weights, weights, tol, *, options):
    """Each candidate's best restart and its index, its Σ w log p and entropy; all (C, …).

    The fits use the weights rescaled to mean one; the criteria use them as given.
    """
    rows = Rows(x, fit_weights)

    def candidate(axes, states_k):
        return best_restart(segments.finish_all(states_k, rows, tol, options.replace(axes=axes)))

    fitted, best = blocks.vmap_restarts(candidate, options.axes)(states)
    sums = jax.vmap(lambda m: log_likelihood_and_entropy(m, x, weights, options.chunk_size, options.missing))(fitted.mixture)
    return fitted, best, *sums


def _candidate(fitted: FitResult, i: int, k: int) -> FitResult:
    """Candidate i of the host copy of the batched fits, its mixture sliced to its first k components."""
    padded = fitted.mixture
    params = jax.tree.map(lambda a: jnp.asarray(a[i, :k]), padded.params)
    mixture = Mixture(jnp.asarray(padded.weights[i, :k]), params, padded.family)
    rest = (jnp.asarray(field[i]) for field in fitted[1:])
    return FitResult(mixture, *rest)
