"""``fit_stream``: exact EM over data read in batches (a file, a memmap, or any re-iterable source).

EM needs the data only through sums over rows, so one iteration can read the
data batch by batch: each batch goes through one compiled accumulation step
(the E-step and the sufficient statistics, added to running sums), and after
the last batch one compiled M-step updates the mixture. The result is the
fit :func:`mixtures.fit` computes on the concatenated data, to rounding.

Memory is two batches (one being read on the host while the device works on
the one before), plus O(chunk × K × D) working memory, whatever the number of
rows.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.fitting import checkpoints, segments, sources
from mixtures._src.engine import em as engine
from mixtures._src.fitting import fit as fitting
from mixtures._src.core.progress import Progress
from mixtures._src.core.family import Family
from mixtures._src.core.incomplete import by_missing, check_missing, row_width
from mixtures._src.fitting.init import INIT_METHODS, check_method, tree_classes
from mixtures._src.core.mixture import Mixture
from mixtures._src.engine.options import DEFAULT_TOL, EMOptions, Rows

__all__ = ["fit_stream", "scan_for_fit", "DEFAULT_INIT_SAMPLE_SIZE"]

DEFAULT_INIT_SAMPLE_SIZE = 100_000


def fit_stream(
    batches,
    family: Family,
    n_components: int,
    *,
    key,
    init="kmeans++",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    batch_size: int | None = None,
    sample_weight=None,
    init_sample_size: int = DEFAULT_INIT_SAMPLE_SIZE,
    assignment: str = "soft",
    update_weights: bool = True,
    prior=None,
    chunk_size: int | None = None,
    callback=None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    missing: str | None = None,
) -> engine.FitResult:
    """Fits a K-component mixture by exact EM, reading the data in batches on every iteration.

    Every EM iteration streams all batches through one compiled accumulation
    step (each batch padded with zero-weight rows to one shape, so it compiles
    once) and then takes the M-step, so the result equals :func:`mixtures.fit`
    on the concatenated data from the same starting mixture, up to the order
    of floating-point sums (1e-6 relative in float64 is tested). Restarts
    (``n_init``) are fitted side by side: each batch is read once per
    iteration for all of them.

    Before anything is compiled, one pass validates every batch (shape,
    dtype, finite values, the family's domain, weights), counts the rows and
    draws a uniform sample of at most ``init_sample_size`` rows (reservoir
    sampling). The initialisation methods run on that sample; when the data
    has no more rows than ``init_sample_size``, the sample is the data itself
    in order and the fit equals ``mx.fit`` from the same key. Each later pass
    validates its batches again and checks the source yields as many rows as
    on the first pass. Files are read with plain reads, a batch at a time, so
    resident memory does not grow with the file.

    Args:
      batches: the data: a (N, D) array; a ``numpy.memmap``; the path of a
        ``.npy`` file (never unpickled); a list of (B, D) arrays or
        ``(x, sample_weight)`` pairs; or a callable with no arguments
        returning an iterator over such batches (called once per pass; it
        must yield the same rows on every pass; batches may differ in length).
      family: the component family, e.g. ``mx.Gaussian("full")``. A
        :class:`~mixtures.GradientFamily` (whose M-step needs the data
        itself) cannot be streamed; use :func:`mixtures.fit`.
      n_components: number of components K, 1 ≤ K ≤ N.
      key: a JAX PRNG key; split into one key per restart as in
        :func:`mixtures.fit`, and also seeds the reservoir sample. May be
        None with a warm start (the sample then uses seed 0).
      init: an initialisation method of :func:`mixtures.fit`, run on the
        sample, or a :class:`~mixtures.Mixture` to start from.
      n_init: number of restarts R.
      max_iter: maximum number of EM iterations.
      tol: stop a restart when its mean log-likelihood per sample changes
        by less than this between iterations.
      batch_size: rows per batch read from an array, memmap or file; default
        about 2²² values per batch. Ignored for callables and lists.
      sample_weight: optional (N,) non-negative row weights of an array,
        memmap or ``.npy`` source, as in :func:`mixtures.fit` (read block by
        block with the rows); a list or callable gives its weights in
        ``(x, sample_weight)`` pairs instead.
      init_sample_size: the bound on the initialisation sample's rows.
      assignment: "soft" (EM) or "hard" (classification EM), as in
        :func:`mixtures.fit`.
      update_weights: if False the mixing weights keep their initial values.
      prior: as in :func:`mixtures.fit`; ``"default"`` is computed from the
        initialisation sample.
      chunk_size: rows per block inside a batch (memory O(chunk_size × K ×
        D)); default chosen from K, R and D.
      callback: optional callable, called after every EM iteration of every
        restart with a :class:`~mixtures.Progress`. An exception it raises
        stops the fit and is raised by ``fit_stream`` as it was.
      checkpoint: optional file path: the state of every restart is saved
        there every ``checkpoint_every`` EM iterations (passes over the
        batches) and when the fit ends, atomically (a NumPy ``.npz``
        archive). If the file exists and holds the checkpoint of the same
        fit (same batches, in the same order and boundaries, with the same
        weights; same family, K, key or warm start, ``n_init``, options,
        ``tol``, ``max_iter``, prior, ``init_sample_size`` and chunk size),
        the fit resumes from it and ends where an uninterrupted fit ends, to
        the last bit; a finished fit's checkpoint returns its result after
        the validating pass alone. The batches are identified by a SHA-256
        digest taken during that validating pass (no extra pass; only when
        ``checkpoint`` is given). A file that is not such a checkpoint is
        refused (``ValueError``) and left as it is. One process only.
      checkpoint_every: EM iterations between checkpoints; by default one is
        written when 30 seconds have passed since the last.
      missing: None (NaN refused) or "marginalize": NaN marks a missing
        entry, as in :func:`mixtures.fit`. A row with nothing observed gets
        weight zero (with a warning after the first pass); a column with
        nothing observed in any batch is refused; the initialisation sample
        has its missing entries set to the sample's column medians.

    Interrupting:
      The host regains control between batches, so Ctrl-C
      (``KeyboardInterrupt``) stops the fit within a batch, with a note on
      the exception saying how many EM iterations ran and which iteration
      the checkpoint holds.

    Returns:
      A :class:`~mixtures.FitResult`, as :func:`mixtures.fit` returns; its
      ``history`` holds the chosen restart's ``n_iter`` values (memory grows
      with the iterations run, not with ``max_iter``).

    Raises:
      TypeError, ValueError: for invalid arguments or data, naming them (a
        batch as ``batches[i]``), before anything is compiled; ValueError
        also when a later pass yields a different number of rows.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> r = mx.fit_stream(x, mx.Gaussian(), 2, key=jax.random.key(0), batch_size=100)
      >>> bool(r.converged), r.mixture.weights.shape
      (True, (2,))
    """
    if not isinstance(family, Family):
        raise TypeError(f"`family` must be a mixtures.Family such as mx.Gaussian(); received {family!r}.")
    checks.hashable_family(family)
    if family.m_step_needs_data:
        raise ValueError(
            f"`family` must have an M-step from summed statistics to be streamed; {type(family).__name__} does "
            "not (its M-step takes optimiser steps over the data): use mx.fit."
        )
    k = checks.positive_int(n_components, "n_components")
    n_init = checks.positive_int(n_init, "n_init")
    max_iter = checks.max_iter(max_iter)
    tol = checks.non_negative_float(tol, "tol")
    sample_size = checks.positive_int(init_sample_size, "init_sample_size")
    if chunk_size is not None:
        chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if not isinstance(assignment, str) or assignment not in fitting.ASSIGNMENTS:
        raise ValueError(f"`assignment` must be one of {fitting.ASSIGNMENTS}; received {assignment!r}.")
    if not isinstance(update_weights, bool):
        raise TypeError(f"`update_weights` must be True or False; received {update_weights!r}.")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable or None; received {callback!r}.")
    checkpoint, checkpoint_every = checkpoints.check_checkpoint(checkpoint, checkpoint_every)
    warm = isinstance(init, Mixture)
    source, seen, key, _ = scan_for_fit(
        batches, family, k, init=init, n_init=n_init, key=key, batch_size=batch_size,
        sample_weight=sample_weight, sample_size=sample_size, digest=checkpoint is not None, missing=missing,
    )
    n, d = seen.n_rows, seen.n_features
    dtype = seen.sample.dtype
    start = fitting._check_warm_start(init, family, k, d, dtype) if warm else None
    # With missing entries the initialisation sees the sample filled, the EM iterations the observed entries.
    sample = checks.to_device(seen.sample if source.holes is None else source.holes.filled(seen.sample))
    sample_weights = seen.sample_weights
    prior = fitting.check_prior(prior, family, sample, k, sample_weights)

    # Everything is valid: only now are arrays made for the compiled programs.
    # Without a prior only the weights' ratios matter, and they are scaled to mean one over the
    # data as mx.fit does; with a prior their total is the data's strength, and they are kept.
    scale = 1.0 if prior is not None or seen.sample_weights is None else n / seen.total_weight
    if sample_weights is not None:
        sample_weights = checks.to_device(sample_weights * scale, dtype)
    chunk = chunk_size or blocks.default_chunk_size(k * n_init, row_width(d, seen.max_missing))
    checks.restarts_fit_in_memory(
        n_init, n_components=k, n_features=d, history=0, chunk_size=chunk, n_rows=n,
        itemsize=np.dtype(dtype).itemsize,
    )
    options = EMOptions(
        chunk_size=chunk, hard=assignment == "hard", update_weights=update_weights, missing=seen.max_missing
    )
    rows = seen.max_rows
    total = checks.to_device(seen.total_weight * scale if seen.sample_weights is not None else float(n), dtype)
    digest = seen.digest
    # The initialisation sample, until the restarts start from it (not at all when a checkpoint resumes).
    initial = {"x": sample, "weights": sample_weights}
    del seen, sample, sample_weights
    zeros = []

    def zero_sums(mixtures):
        if not zeros:
            zeros.append(_zero_sums(mixtures, rows, d, dtype, options))
        return zeros[0]

    def one_pass(mixtures):
        sums = zero_sums(mixtures)
        count = 0
        for batch in source.batches():
            x, w = sources.padded(batch, rows, source.name)
            if scale != 1.0:
                w = w * np.asarray(scale, w.dtype)
            order = None if source.holes is None else by_missing(x)
            if order is not None:  # rows by their number of missing entries, as mx.fit sorts them
                x, w = x[order], w[order]
            done = sums
            sums = _add_batch(mixtures, done, jax.device_put(x), jax.device_put(w), options=options)
            # The next batch is read while this one is computed, and no further: without the wait,
            # reading outpaces the device and every batch of the pass queues up in memory.
            jax.block_until_ready(done)
            count += batch.x.shape[0]
        if count != n:
            raise ValueError(
                f"`{source.name}` yielded {count} rows on a later pass but {n} on the first; fit_stream needs "
                "a source that yields the same rows on every pass."
            )
        return sums

    r = n_init
    tol = checks.to_device(tol, dtype)
    host_tol = np.asarray(tol)

    def begin():
        if warm:
            mixtures = jax.tree.map(lambda a: a[None], start)
        else:
            keys = jax.random.split(key, n_init)
            x, w = initial["x"], initial["weights"]
            classes = tree_classes(init, x, [k], w)
            classes = None if classes is None else classes[0]
            mixtures = _initial(keys, x, w, classes, family=family, k=k, method=init, options=options.replace(missing=0))
        return _begin(mixtures)

    def start_and_let_go():  # called at most once, after any look at the shapes: the sample goes with it
        state = begin()
        initial.clear()
        return state

    def advance(state, first, until):
        # One EM iteration (one pass over the batches) per call, fewer than `until - first` as fit's
        # segments stop short when every restart has converged: Ctrl-C and checkpoints act between passes.
        del until
        active = ~np.asarray(state.converged)
        sums = one_pass(state.mixtures)
        new, ll, refused = _step(state.mixtures, sums, total, update_weights, prior)
        ll, refused = np.asarray(ll), np.asarray(refused)
        mixtures = _select(jax.device_put(active), new, state.mixtures)
        now = active & np.asarray(engine.has_converged(ll, np.asarray(state.previous), host_tol))  # fit's own test
        state = _Loop(
            mixtures=mixtures,
            previous=np.where(active, ll, state.previous),
            n_iter=np.asarray(state.n_iter) + active,
            converged=np.asarray(state.converged) | now,
            collapsed=np.asarray(state.collapsed) | (refused & active[:, None]),
            final=state.final,
        )
        if callback is not None:
            for j in np.flatnonzero(active):
                callback(Progress(int(j), first + 1, float(ll[j])))
        going = bool(np.any(active & ~now)) and first + 1 < max_iter
        if not going:  # the final log-likelihood, in the state, so that a finished checkpoint holds it
            state = state._replace(final=np.asarray(_final(mixtures, one_pass(mixtures), total, prior)))
        history = np.where(active, ll, np.nan).astype(dtype)[:, None]
        return state, history, np.asarray(going), np.asarray(first + 1)

    saving = None
    if checkpoint is not None:
        # Everything the result depends on (the batches through the first pass's digest); not the
        # callback, which only watches.
        identity = checkpoints.fingerprint(
            "fit_stream", repr(family), k, n_init, start if warm else init, None if warm else key, repr(options),
            tol, max_iter, prior, digest, rows, sample_size, scale,
        )
        saving = checkpoints.Checkpoint(checkpoint, checkpoint_every, identity, lambda: jax.eval_shape(begin))
    state, history = segments.run(start_and_let_go, advance, max_iter=max_iter, checkpoint=saving, what="mx.fit_stream")
    n_iter, converged = np.asarray(state.n_iter), np.asarray(state.converged)
    n_collapsed = np.sum(np.asarray(state.collapsed), axis=1, dtype=np.int32)
    results = engine.FitResult(
        mixture=state.mixtures,
        log_likelihood=state.final,
        history=np.zeros((r, 0), dtype),  # the host history is added to the chosen restart below
        n_iter=n_iter,
        converged=converged,
        all_log_likelihoods=state.final,
        all_n_iter=n_iter,
        all_converged=converged,
        n_collapsed=n_collapsed,
        all_n_collapsed=n_collapsed,
    )
    result, best = _best(jax.tree.map(checks.to_device, results))
    return fitting.with_history(result, history, best)


def scan_for_fit(
    batches, family, k: int, *, init, n_init: int, key, batch_size, sample_weight, sample_size: int,
    digest: bool = False, missing=None,
):
    """The host-side start of a fit over a source: checks ``init`` and ``key``, scans once, checks K.

    Shared by :func:`fit_stream` and :func:`mixtures.online.fit_online`. The
    scan validates every batch and draws the initialisation sample, seeded by
    ``key`` (seed 0 without one); K must not exceed the rows, the rows of
    positive weight, or (unless ``init`` is a Mixture) the sample's rows of
    positive weight. With ``digest`` it also hashes every batch, for a
    checkpoint's fingerprint (``scan.digest``). Nothing is compiled.

    Returns:
      ``(source, scan, key, positive_in_sample)``: the :class:`~mixtures._sources.Source`,
      its :class:`~mixtures._sources.Scan`, the checked key (None with a
      warm start and no key) and the sample's rows of positive weight.
    """
    if isinstance(init, Mixture):
        if n_init != 1:
            raise ValueError(f"`n_init` must be 1 with a warm start (`init` a Mixture); received {n_init}.")
    elif isinstance(init, str) and init in INIT_METHODS:
        check_method(init, family)
        key = checks.prng_key(key)
    else:
        raise ValueError(f"`init` must be one of {INIT_METHODS} or a mixtures.Mixture; received {init!r}.")
    seed = 0 if key is None else np.asarray(jax.random.key_data(checks.prng_key(key))).ravel()
    take_missing = check_missing(missing, family)
    source = sources.as_source(batches, family, batch_size=batch_size, sample_weight=sample_weight)
    if take_missing:
        source.take_missing()
    seen = sources.scan(source, sample_size, seed, digest=digest)
    if k > seen.n_rows:
        raise ValueError(f"`n_components` ({k}) must be at most the number of samples N ({seen.n_rows}).")
    checks.components_within_rows(k, seen.n_positive)
    weights = seen.sample_weights
    in_sample = seen.sample.shape[0] if weights is None else int(np.count_nonzero(weights > 0))
    if not isinstance(init, Mixture) and k > in_sample:
        raise ValueError(
            f"`n_components` ({k}) must be at most the rows of positive weight in the initialisation sample "
            f"({in_sample}); raise `init_sample_size` (now {sample_size})."
        )
    return source, seen, key, in_sample


class _Loop(NamedTuple):
    """The EM loop's state, what a checkpoint holds: the restarts' mixtures (stacked) and their monitoring arrays.

    A restart is still iterating while it has not converged. ``final`` is
    NaN until the loop ends, then each restart's final log-likelihood.
    """

    mixtures: Mixture
    previous: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    collapsed: np.ndarray
    final: np.ndarray


@jax.jit
def _begin(mixtures) -> _Loop:
    r, k = mixtures.weights.shape
    dtype = mixtures.weights.dtype
    return _Loop(
        mixtures=mixtures,
        previous=jnp.full((r,), -jnp.inf, dtype),
        n_iter=jnp.zeros((r,), jnp.int32),
        converged=jnp.zeros((r,), bool),
        collapsed=jnp.zeros((r, k), bool),
        final=jnp.full((r,), jnp.nan, dtype),
    )


@functools.partial(jax.jit, static_argnames=("family", "k", "method", "options"))
def _initial(keys, x, weights, classes, *, family, k, method, options):
    def one(axes, key):
        return fitting.start_restart(
            family, k, method, key, Rows(x, weights), options.replace(axes=axes), classes=classes
        )

    return blocks.vmap_restarts(one, options.axes)(keys)


def _zero_sums(mixtures, rows, d, dtype, options):
    x, w = jax.ShapeDtypeStruct((rows, d), dtype), jax.ShapeDtypeStruct((rows,), dtype)
    shapes = jax.eval_shape(lambda m, x, w: _accumulate(m, x, w, options), mixtures, x, w)
    return jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype)), shapes)


def _accumulate(mixtures, x, w, options):
    def one(axes, m):
        return engine.accumulate(m, Rows(x, w), options.replace(axes=axes))

    return blocks.vmap_restarts(one, options.axes)(mixtures)


@functools.partial(jax.jit, static_argnames="options")
def _add_batch(mixtures, sums, x, w, *, options):
    return jax.tree.map(jnp.add, sums, _accumulate(mixtures, x, w, options))


@functools.partial(jax.jit, static_argnames="update_weights")
def _step(mixtures, sums, total, update_weights, prior):
    def one(m, s):
        new, refused = engine._maximize(m, s, update_weights, None, prior)
        return new, engine._objective(m, s.log_likelihood, prior) / total, refused

    return jax.vmap(one)(mixtures, sums)


@jax.jit
def _select(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


@jax.jit
def _final(mixtures, sums, total, prior):
    return jax.vmap(lambda m, s: engine._objective(m, s.log_likelihood, prior) / total)(mixtures, sums)


_best = jax.jit(fitting.best_restart)
