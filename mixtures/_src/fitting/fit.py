"""``fit``: host-side validation, then the compiled initialisation, EM segments and finish."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.fitting import checkpoints, devices, processes, segments
from mixtures._src.core import progress
from mixtures._src.engine import em as engine
from mixtures._src.core.family import Family
from mixtures._src.core.incomplete import by_missing, check_missing, incomplete_rows, row_width
from mixtures._src.fitting.init import INIT_METHODS, check_method, initialize, start_key, tree_classes
from mixtures._src.core.mixture import Mixture
from mixtures._src.engine.options import DEFAULT_TOL, EMOptions, Rows
from mixtures._src.core.priors import DirichletPrior, Prior, check_dirichlet_prior

__all__ = ["INIT_METHODS", "check_prior", "em_step", "fit", "fit_restarts"]

ASSIGNMENTS = ("soft", "hard")


def fit(
    x,
    family: Family,
    n_components: int,
    *,
    key=None,
    init="kmeans++",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    sample_weight=None,
    labels=None,
    assignment: str = "soft",
    update_weights: bool = True,
    chunk_size: int | None = None,
    prior=None,
    callback=None,
    mesh=None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    missing: str | None = None,
) -> engine.FitResult:
    """Fits a K-component mixture of ``family`` to ``x`` by EM.

    Initialisation, the EM iterations and the final log-likelihood are
    compiled once (three programs; the iterations run as calls of about a
    quarter of a second, see "Interrupting" below); ``n_init`` restarts run
    side by side under ``jax.vmap`` and the one with the highest final
    log-likelihood is returned. Data is
    used in its own floating dtype: float32, or float64 when JAX's x64 mode is
    on (``jax.config.update("jax_enable_x64", True)``); integer data is
    converted to the default float dtype.

    Across devices (``mesh``, or ``x`` split along its rows): each device
    runs the E-step and the accumulation on its own rows, ``lax.psum`` adds
    the statistics across devices, and the M-step and the convergence test
    run replicated on every device; every option works as on one device,
    for every family. N need not be a multiple of the number of devices: the
    rows are padded with zero-weight copies of the first row. The result is
    the single-device fit's from the same key, up to the order in which
    floating-point sums are added (in float64 about 1e-15 relative; 1e-9
    for a :class:`~mixtures.GradientFamily`, whose Adam steps amplify
    rounding). The EM iterations hold only each device's rows, but the
    initialisation (``init`` a method) gathers the N rows onto every device
    while it runs, one copy each: for data too large for one device, start
    from a mixture fitted on a subsample (``init=`` that mixture), which
    gathers nothing.

    Multi-host: call ``jax.distributed.initialize()`` in every process, make
    ``x`` from each process's rows with
    ``jax.make_array_from_process_local_data(NamedSharding(mesh,
    PartitionSpec(mesh.axis_names)), local_rows)`` (every device holding the
    same number of rows) and call ``fit`` with the same arguments in every
    process, with ``mesh`` or without. Each process validates its own rows
    and arguments, then the processes exchange the outcome before anything
    is compiled: if one refuses, every process raises (that one its own
    error, the others a ``ValueError`` naming it). A process that dies mid-fit makes
    the others' collectives fail as its sockets close: their result raises
    a ``JaxRuntimeError`` when awaited, within seconds; a lost machine is
    declared dead after ``heartbeat_timeout_seconds`` of
    ``jax.distributed.initialize`` (100 s by default), and the others
    abort. Tested with two
    processes on localhost and gloo CPU collectives
    (``jax.config.update("jax_cpu_collectives_implementation", "gloo")``);
    ``sample_weight`` and ``labels`` are host arrays
    of all N rows, the same in every process; ``prior="default"``, computed
    from all the rows, is refused. Every process receives the whole result.

    Args:
      x: (N, D) array-like of real numbers.
      family: the component family, e.g. ``mx.Gaussian("full")``.
      n_components: number of components K, 1 ≤ K ≤ N.
      key: a JAX PRNG key (``jax.random.key(seed)``), split into one key per
        restart; may be None (the default) only when ``init`` is "hc" or a
        :class:`~mixtures.Mixture`, which draw nothing.
      init: "kmeans++" (D² seeding and a few Lloyd iterations), "kmeans"
        (Lloyd's algorithm to convergence), "random" (random
        responsibilities), "random_from_data" (K random rows as centres),
        "hc" (mclust's default start: its model-based hierarchical
        clustering, computed on the host, cut at K classes, then one M-step;
        Gaussian families only, deterministic, and O(N²) in time and memory
        on at most 2000 rows, see :mod:`mixtures._src.fitting.init`), or a
        :class:`~mixtures.Mixture` to start from (a warm start).
      n_init: number of restarts R, each from its own key. With
        ``init="hc"`` every restart starts from the same mixture, so they
        all end alike: use 1.
      max_iter: maximum number of EM iterations.
      tol: stop when the mean log-likelihood per sample changes by less than
        this between iterations (the two values recorded in ``history``;
        scikit-learn's rule, whose default there is 10⁻³). A change of at
        most 4 ε |ℓ| (ε the dtype's machine epsilon) is rounding and also
        stops the fit, converged: a positive ``tol`` below the dtype's
        resolution stops there instead of running to ``max_iter``;
        ``tol=0`` runs all ``max_iter`` iterations.
        The change per iteration is not the distance to the optimum: where
        EM converges slowly (strongly overlapping components) the remaining
        gap can be tens of times ``tol``. The default 10⁻⁵ stops within
        10⁻⁶ per row of the optimum on the examples in the docs, at one to
        four iterations more than 10⁻³; ``docs/numerics.md`` ("Convergence")
        gives the measurements.
      sample_weight: optional (N,) non-negative row weights; integer weights
        fit as the rows repeated that many times. Without a prior the fit
        depends only on their ratios (they are rescaled to mean one); with a
        prior their sum is the data's weight against the prior.
      labels: optional (N,) integers for a semi-supervised fit: a row with
        label l in 0..K−1 belongs to component l (its responsibilities are
        fixed one-hot), −1 marks an unlabelled row.
      assignment: "soft" (EM) or "hard" (classification EM: each row is
        assigned wholly to its most probable component; with
        ``mx.Gaussian("identity")`` and ``update_weights=False`` this is
        Lloyd's K-means algorithm). With "hard", ``log_likelihood`` and
        ``history`` are the complete-data log-likelihood of the assignments.
      update_weights: if False the mixing weights stay at their initial
        values (equal, 1/K, unless ``init`` is a mixture).
      chunk_size: rows per block of the E-step and accumulation (memory
        O(chunk_size × K × D)); default chosen from K and D.
      prior: None (maximum likelihood), or a prior for MAP-EM: "default"
        (the family's data-driven component prior, e.g. mclust's for
        :class:`~mixtures.Gaussian`), a component prior
        (:class:`~mixtures.priors.GaussianPrior`,
        :class:`~mixtures.priors.ConjugatePrior`), a
        :class:`~mixtures.priors.DirichletPrior` on the weights, or a
        :class:`~mixtures.priors.Prior` holding both. With a prior every
        M-step is the posterior mode, and ``log_likelihood``, ``history``,
        ``tol`` and the choice of restart use the mean log posterior per
        sample (Σₙ wₙ log p(xₙ) + log p(θ)) / Σₙ wₙ, with log p(θ) up to a
        constant (see ``docs/priors.md``). The initialisation does not use
        the prior.
      callback: optional callable, called on the host after every EM
        iteration of every restart with a :class:`~mixtures.Progress`
        (restart, iteration, log_likelihood); for progress bars and logs.
        Every call has been made when ``fit`` returns. The compiled program
        does not depend on which callable is given, only on whether one is.
        In a multi-process run only the process holding the first device of
        the mesh calls it. An exception it raises stops the fit and is
        raised by ``fit`` as it was raised (type and traceback), within a
        segment of iterations (see "Interrupting" below).
      mesh: optional ``jax.sharding.Mesh`` for a data-parallel fit: the
        rows are split over all its devices (over all its axes, in order)
        and ``x`` may be any array-like. Without ``mesh``, an ``x`` that is a
        ``jax.Array`` split along its rows by a ``NamedSharding`` is fitted
        on that sharding's mesh, over the axes it names; an ``x`` split along
        its features is refused. See "Across devices" above.
      checkpoint: optional file path: the state of every restart is saved
        there every ``checkpoint_every`` iterations (by default every 30
        seconds) and when the fit ends,
        atomically (a NumPy ``.npz`` archive). If the file exists and holds
        the checkpoint of the same fit (same data, weights, labels, family,
        K, key or warm start, options, ``tol``, ``max_iter`` and prior), the
        fit resumes from it and ends where an uninterrupted fit ends, to the
        last bit; a finished fit's checkpoint returns its result at once.
        A file that is not such a checkpoint is refused (``ValueError``) and
        left as it is. One process only.
      checkpoint_every: iterations between checkpoints; by default one is
        written when 30 seconds have passed since the last. Each writes the
        state and the history so far (and ends a segment): every few
        iterations of a fast fit slows it several times.
      missing: None (the default: NaN in ``x`` is refused) or "marginalize":
        NaN marks a missing entry, and EM uses each row's observed entries
        only, which is exact when entries are missing at random (see
        ``docs/missing.md``): the E-step takes the density of the observed
        entries, the M-step the statistics' conditional expectation given
        them. For :class:`~mixtures.Gaussian` (every covariance model),
        :class:`~mixtures.Poisson`, :class:`~mixtures.Bernoulli`,
        :class:`~mixtures.Exponential`, :class:`~mixtures.Categorical` and
        :class:`~mixtures.Independent` products of these
        (``family.handles_missing``). A
        row with nothing observed is left out (with a warning); a column with
        nothing observed is refused. The initialisation, and ``prior="default"``,
        use the rows with each missing entry set to its column's median. With no NaN in ``x``
        the fit is the complete-data fit, bit for bit. Rows split over the
        devices of several processes (a ``jax.Array`` not held here) are
        refused with it: pass this process's rows as a host array.

    Interrupting:
      The EM iterations run as a sequence of compiled calls, each sized to
      take about a quarter of a second; between them Python regains
      control, so Ctrl-C (``KeyboardInterrupt``) stops the fit within about
      that time after compilation, with a note on the exception saying how
      many iterations ran (and which the checkpoint holds). How the
      iterations are grouped never changes the result.

    Returns:
      A :class:`~mixtures.FitResult`; its ``all_*`` fields hold every
      restart's final log-likelihood, iteration count, convergence flag and
      number of collapsed components (``n_collapsed``: components whose
      M-step update was refused because they emptied or their new parameters
      were not finite; they keep their previous parameters, see
      ``docs/numerics.md``).

    Raises:
      ValueError: for an argument of the right kind but an invalid value
        (NaN or infinite data, K outside 1..N, data outside the family's
        domain, ...), naming the argument, before anything is compiled.
      TypeError: for an argument of the wrong kind (string or complex data,
        a non-integer K, ...), likewise.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> result = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0), n_init=4)
      >>> result.mixture.weights.shape, result.mixture.params.means.shape
      ((2,), (2, 2))
      >>> result.all_log_likelihoods.shape, bool(result.converged)
      ((4,), True)
      >>> map_fit = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0), prior="default")
      >>> bool(map_fit.converged)
      True
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))  # rows over every device
      >>> bool(mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0), mesh=mesh).converged)
      True
    """
    if not isinstance(family, Family):
        raise TypeError(
            f"`family` must be a mixtures.Family such as mx.Gaussian(); received {family!r}."
        )
    checks.hashable_family(family)
    incomplete = None
    # With x spread over processes, all of them raise if any one's checks do (none waits in the
    # compiled program for a process that never comes).
    with processes.agreed_checks(x):
        split = devices.row_split(x, mesh)  # None: one device
        if check_missing(missing, family):
            if checks.is_traced(x):
                raise TypeError("`x` must be a concrete array: mx.fit validates on the host and cannot be traced.")
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                raise ValueError(
                    '`missing="marginalize"` needs the rows on the host: `x` spans the devices of several '
                    "processes; pass each process's rows as a NumPy array (with `mesh`)."
                )
            n_given = np.shape(x)[0] if np.ndim(x) == 2 else None
            incomplete = incomplete_rows(x, family)  # the family's domain checked on the observed entries
            x = incomplete.x if split is not None else checks.to_device(incomplete.x)
        else:
            if split is None:
                x = checks.as_data(x, "x")
            if checks.is_traced(x):
                raise TypeError("`x` must be a concrete array: mx.fit validates on the host and cannot be traced.")
            if split is None:
                family.check_data(np.asarray(x))
            elif devices.keeps_placement(x, split):
                x = devices.check_sharded_rows(x, family)  # shard by shard: never gathered
            else:
                x = checks.as_host_data(x, "x")
                family.check_data(x)
        n, d = x.shape
        k = checks.positive_int(n_components, "n_components", upper=n, upper_name="the number of samples N")
        n_init = checks.positive_int(n_init, "n_init")
        max_iter = checks.max_iter(max_iter)
        tol = checks.non_negative_float(tol, "tol")
        # Restarts run side by side under vmap.
        width = d if incomplete is None else row_width(d, incomplete.max_missing)
        chunk = (
            blocks.default_chunk_size(k * n_init, width)
            if chunk_size is None
            else checks.positive_int(chunk_size, "chunk_size")
        )
        checks.restarts_fit_in_memory(
            n_init, n_components=k, n_features=d, history=min(max_iter, segments.SEGMENT), chunk_size=chunk, n_rows=n,
            itemsize=np.dtype(x.dtype).itemsize,
        )
        if incomplete is None:
            weights = checks.as_sample_weight(sample_weight, n)
            labels = checks.as_labels(labels, n, k)
        else:
            # Given for all the rows; the rows with nothing observed are left out with theirs.
            weights = checks.as_sample_weight(sample_weight, n_given)
            labels = checks.as_labels(labels, n_given, k)
            # Rows sorted by their number of missing entries (see incomplete.by_missing); the rows
            # with nothing observed left out. Weights and labels follow their rows.
            rows_used = np.flatnonzero(incomplete.kept)
            order = by_missing(incomplete.x)
            if order is not None:
                rows_used = rows_used[order]
                incomplete = incomplete._replace(x=incomplete.x[order], filled=incomplete.filled[order])
                x = incomplete.x if split is not None else checks.to_device(incomplete.x)
            weights = None if weights is None else checks.to_device(np.asarray(weights)[rows_used])
            labels = None if labels is None else checks.to_device(np.asarray(labels)[rows_used])
        if weights is not None:
            checks.components_within_rows(k, int(np.count_nonzero(np.asarray(weights) > 0)))
        if not isinstance(assignment, str) or assignment not in ASSIGNMENTS:
            raise ValueError(f"`assignment` must be one of {ASSIGNMENTS}; received {assignment!r}.")
        if not isinstance(update_weights, bool):
            raise TypeError(f"`update_weights` must be True or False; received {update_weights!r}.")
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable or None; received {callback!r}.")
        checkpoint, checkpoint_every = checkpoints.check_checkpoint(checkpoint, checkpoint_every)
        if isinstance(init, Mixture):
            if n_init != 1:
                raise ValueError(f"`n_init` must be 1 with a warm start (`init` a Mixture); received {n_init}.")
            start = _check_warm_start(init, family, k, d, x.dtype)
        elif isinstance(init, str) and init in INIT_METHODS:
            check_method(init, family)
            key = start_key(key, init)
            if init == "hc":
                _check_tree_start(x, labels)
        else:
            raise ValueError(f"`init` must be one of {INIT_METHODS} or a mixtures.Mixture; received {init!r}.")
        if isinstance(x, jax.Array) and not x.is_fully_addressable and _uses_default_prior(prior):
            raise ValueError(
                '`prior="default"` is computed from all the rows of `x`, which no process holds here '
                "(x spans several processes): pass an explicit prior."
            )
        # With missing entries a data-driven prior ("default") is computed from the filled rows.
        prior = check_prior(prior, family, x if incomplete is None else checks.to_device(incomplete.filled), k, weights)
        if incomplete is not None:
            family.check_methods(incomplete.filled)
        elif split is None or not devices.keeps_placement(x, split):
            # Last, as they evaluate the family's own methods: a mistake in them is named here.
            family.check_methods(np.asarray(x))
            if isinstance(init, Mixture) and getattr(family, "make_params", None) is None:
                # No checked constructor states the parameter space: ask the densities.
                _check_warm_start_densities(start, np.asarray(x) if incomplete is None else incomplete.filled)

    # Everything is valid: only now are arrays made for the compiled program.
    # With missing entries the initialisation sees the filled rows, the EM iterations the observed entries.
    x_init = x if incomplete is None or incomplete.max_missing == 0 else incomplete.filled  # filled is x without NaN
    classes = None if isinstance(init, Mixture) else tree_classes(init, x_init, [k], weights)
    classes = None if classes is None else classes[0]
    tol = checks.to_device(tol, x.dtype)
    # ``max_iter`` is the host loop's (segments.run): the compiled programs are built with the
    # default, so another ``max_iter`` (like another ``tol``, passed traced) compiles nothing.
    options = EMOptions(
        chunk_size=chunk, hard=assignment == "hard", update_weights=update_weights,
        report=callback is not None, missing=0 if incomplete is None else incomplete.max_missing,
    )
    init_options = options.replace(missing=0)
    plan = None if split is None else devices.RowPlan(*split, n)
    if plan is not None:
        rows = _place_rows(plan, x, weights, labels, prior)
        init_rows = rows if x_init is x else _place_rows(plan, x_init, weights, labels, prior)
        if isinstance(init, Mixture):
            begin = functools.partial(_start_from, start, batched=True)
        else:
            begin = functools.partial(
                _start_restarts_on_mesh, jax.random.split(key, n_init), init_rows, classes, family=family, k=k,
                method=init, options=init_options, plan=plan, weighted=weights is not None,
            )
    else:
        if weights is not None:
            # Without a prior only the weights' ratios matter: rescale them to mean one.
            # With a prior their total is the data's strength against it: keep them.
            weights = (
                checks.unit_mean_weights(weights, x.dtype) if prior is None else checks.to_device(weights, x.dtype)
            )
        rows = Rows(x, weights, labels)
        init_rows = rows if x_init is x else Rows(checks.to_device(x_init), weights, labels)
        if isinstance(init, Mixture):
            begin = functools.partial(_start_from, start)
        else:
            begin = functools.partial(
                _start_restarts, jax.random.split(key, n_init), init_rows, classes, family=family, k=k, method=init,
                options=init_options,
            )
    saving = None
    if checkpoint is not None:
        # Everything the result depends on; not the callback, which only watches. The options
        # are written with max_iter, as before it left them, so earlier checkpoints still match.
        identity = checkpoints.fingerprint(
            "fit", repr(family), k, n_init, init if isinstance(init, str) else start,
            None if isinstance(init, Mixture) else key, repr(options.replace(report=False, max_iter=max_iter)), tol, max_iter, x,
            weights, labels, prior, None if plan is None else repr((plan.n_devices, plan.n_rows)),
        )
        saving = checkpoints.Checkpoint(checkpoint, checkpoint_every, identity, lambda: jax.eval_shape(begin))
    batched = plan is not None or not isinstance(init, Mixture)
    with progress.receiving(callback) as receiver:
        return run(
            begin, rows, tol, prior, options, max_iter=max_iter, receiver=receiver, plan=plan, batched=batched,
            checkpoint=saving,
        )


def run(
    begin, rows: Rows, tol, prior, options: EMOptions, *, max_iter: int, receiver=np.int32(0), plan=None,
    batched=True, checkpoint=None,
) -> engine.FitResult:
    """The EM loop from ``begin()`` in segments (:func:`~mixtures._src.fitting.segments.run`), then the finish.

    On one device, or with the rows split over ``plan``'s devices; the
    states of several restarts (``batched``, always on a mesh) or of one.
    Returns the best restart's result, with its history.
    """
    if plan is None:

        def advance(states, first, until):
            return _advance(states, rows, tol, prior, receiver, first, until, options=options, batched=batched)

        def finish(states):
            return _finish(states, rows, tol, prior, options=options, batched=batched)
    else:

        def advance(states, first, until):
            return _advance_on_mesh(states, rows, tol, prior, receiver, first, until, options=options, plan=plan)

        def finish(states):
            return _finish_on_mesh(states, rows, tol, prior, options=options, plan=plan)

    with segments.interrupts_deferred():
        states, history = segments.run(
            begin, advance, max_iter=max_iter, receiver=receiver, checkpoint=checkpoint, what="mx.fit"
        )
        result, best = finish(states)
        try:
            segments.raise_if_interrupted()
        except KeyboardInterrupt as interrupt:
            interrupt.add_note(f"mx.fit was interrupted after its last EM iteration ({history.shape[-1]}).")
            raise
    return with_history(result, history, best)


def fit_restarts(keys, rows: Rows, tol, prior=None, classes=None, *, family, k, method, options) -> engine.FitResult:
    """The best of ``keys``' restarts on one device, run as :func:`mx.fit` runs them (without progress or checkpoint).

    ``classes``: for ``method="hc"``, the rows' classes (:func:`~mixtures._src.fitting.init.tree_classes`).
    At most ``options.max_iter`` iterations.
    """
    max_iter, options = options.max_iter, options.replace(max_iter=EMOptions.max_iter)
    begin = functools.partial(_start_restarts, keys, rows, classes, family=family, k=k, method=method, options=options)
    return run(begin, rows, tol, prior, options, max_iter=max_iter)


def with_history(result: engine.FitResult, history, best) -> engine.FitResult:
    """``result`` with its history: the iterations it ran, from the host history of every restart."""
    history = np.asarray(history)
    if history.ndim > 1:
        history = history[int(best)]
    return result._replace(history=checks.to_device(history[: int(result.n_iter)], history.dtype))


def check_prior(prior, family: Family, x, n_components: int, sample_weight=None) -> Prior | None:
    """Validates ``fit``'s ``prior`` on the host; returns a :class:`~mixtures.priors.Prior` of arrays or None.

    A component prior is checked by ``family.check_prior`` ("default" is
    ``family.default_prior``), a weight prior by
    :func:`~mixtures.priors.check_dirichlet_prior`; every array is cast to
    ``x``'s dtype.

    Args:
      prior: None, "default", a component prior, a DirichletPrior or a Prior.
      family: the component family.
      x: (N, D) data as a ``jax.Array`` in the compute dtype.
      n_components: K.
      sample_weight: optional (N,) row weights (for "default").

    Returns:
      None, or a Prior whose fields are validated pytrees of arrays or None.

    Example:
      >>> import numpy as np, jax.numpy as jnp, mixtures as mx
      >>> from mixtures._src.fitting.fit import check_prior
      >>> p = check_prior("default", mx.Gaussian("diag"), jnp.array([[0.0, 1.0], [2.0, 3.0]]), 1)
      >>> p.components.scale.tolist(), p.weights
      ([1.0, 1.0], None)
    """
    if prior is None:
        return None
    if isinstance(prior, DirichletPrior):
        prior = Prior(weights=prior)
    elif not isinstance(prior, Prior):
        if isinstance(prior, str) and prior != "default":
            raise ValueError(f'`prior` must be None, "default" or a prior object; received {prior!r}.')
        if not isinstance(prior, (str, tuple)):
            raise TypeError(
                '`prior` must be None, "default", a component prior (mixtures.GaussianPrior, '
                f"mixtures.ConjugatePrior), a mixtures.DirichletPrior or a mixtures.Prior; received {prior!r}."
            )
        prior = Prior(components=prior)
    # The weight prior first: the component prior's check ends by making device arrays.
    weights = None if prior.weights is None else check_dirichlet_prior(prior.weights, x.dtype)
    components = prior.components
    if isinstance(components, str):
        if components != "default":
            raise ValueError(f'`prior.components` must be a prior object, "default" or None; received {components!r}.')
        row_weights = None if sample_weight is None else np.asarray(sample_weight)
        components = family.default_prior(np.asarray(x), n_components, row_weights)
    if components is not None:
        components = family.check_prior(components, x)
    return Prior(components, weights)


def _uses_default_prior(prior) -> bool:
    return (isinstance(prior, str) and prior == "default") or (
        isinstance(prior, Prior) and isinstance(prior.components, str)
    )


def _place_rows(plan, x, weights, labels, prior):
    """The validated rows, weights and labels split over ``plan``'s devices, padded with zero-weight rows."""
    if isinstance(x, jax.Array):  # already split as the plan needs (and N a multiple of P)
        rows = jax.device_put(x, plan.rows)
    else:
        rows = devices.place(x, plan, fill=x[0])
    if weights is not None:
        # As on one device: rescaled to mean one without a prior, kept with one.
        host = checks.unit_mean_weights(weights, x.dtype) if prior is None else checks.to_device(weights, x.dtype)
        weights = devices.place(host, plan, fill=0)
    elif plan.n_padded > plan.n_rows:
        weights = devices.place(np.ones(plan.n_rows, x.dtype), plan, fill=0)
    if labels is not None:
        labels = devices.place(labels, plan, fill=-1)
    return Rows(rows, weights, labels)


def _check_tree_start(x, labels) -> None:
    """Refuses what ``init="hc"`` cannot start from: labels, or rows that no process holds all of."""
    if labels is not None:
        raise ValueError(
            "`labels` cannot be combined with `init='hc'`: the start's classes are the hierarchical clustering's; "
            "use another `init` for a semi-supervised fit."
        )
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        raise ValueError(
            "`init='hc'` builds its tree from all the rows on the host, which no process holds here "
            "(x spans several processes): start from a mixture fitted on a sample (`init=` that mixture)."
        )


def _check_warm_start(init: Mixture, family, k, d, dtype) -> Mixture:
    if init.family != family:
        raise ValueError(f"`init` is a mixture of {init.family!r}, but `family` is {family!r}.")
    if init.n_components != k:
        raise ValueError(f"`init` has {init.n_components} components, but n_components={k}.")
    rows = jax.ShapeDtypeStruct((k, d), dtype)
    expected = jax.eval_shape(family.init_params, rows, rows)
    got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), dtype), init.params)
    same = jax.tree.structure(expected) == jax.tree.structure(got) and all(
        e.shape == g.shape for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got))
    )
    if not same:
        raise ValueError(
            f"`init.params` must be laid out as {family!r} lays out {k} components of {d} features "
            f"(leaf shapes {_leaf_shapes(expected)}); received leaf shapes {_leaf_shapes(got)}."
        )
    weights = np.asarray(init.weights, dtype=np.float64)
    if weights.shape != (k,) or np.any(~np.isfinite(weights)) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=1e-5):
        raise ValueError(f"`init.weights` must be {k} non-negative numbers summing to 1; received {weights}.")
    host = jax.tree.map(lambda a: np.asarray(a).astype(dtype), init.params)
    for leaf in jax.tree.leaves(host):
        if not np.all(np.isfinite(leaf)):
            raise ValueError(f"`init.params` must be finite in {np.dtype(dtype)}.")
    family.check_params(host)
    return Mixture(checks.to_device(weights, dtype), jax.tree.map(checks.to_device, host), family)


def _check_warm_start_densities(start: Mixture, x: np.ndarray) -> None:
    """Refuses a warm start whose log-densities on the first rows are NaN: it lies outside the parameter space."""
    logp = np.asarray(start.family.log_prob_components(start.params, checks.to_device(x[: min(len(x), 256)], start.dtype)))
    bad = np.flatnonzero(np.isnan(logp).any(axis=0))
    if len(bad):
        raise ValueError(
            f"`init.params` must lie in the parameter space of {start.family!r}: component {int(bad[0])} gives "
            "NaN log-densities on the data."
        )


def _leaf_shapes(tree):
    return [tuple(leaf.shape) for leaf in jax.tree.leaves(tree)]


def em_step(mixture: Mixture, x, *, sample_weight=None, chunk_size: int | None = None, missing: str | None = None):
    """One EM iteration: E-step, accumulation, M-step.

    Jit-able: inside ``jax.jit`` only shapes are checked.

    Args:
      mixture: the current :class:`~mixtures.Mixture`.
      x: (N, D) data.
      sample_weight: optional (N,) non-negative row weights.
      chunk_size: rows per block; default chosen from K and D.
      missing: None (NaN refused) or "marginalize": NaN marks a missing
        entry, as in :func:`mixtures.fit` (``x`` concrete, not traced).

    Returns:
      ``(new_mixture, log_likelihood)``, the latter the mean log-likelihood
      per sample of ``mixture`` (before the step).

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> m = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(0), max_iter=5).mixture
      >>> m2, ll = mx.em_step(m, x)
      >>> bool(m2.log_prob(x).mean() >= ll)
      True
    """
    x, max_missing = mixture._rows(x, missing)
    weights = checks.as_sample_weight(sample_weight, x.shape[0])
    if weights is not None and not checks.is_traced(weights):
        weights = checks.unit_mean_weights(weights, x.dtype)
    elif weights is not None:
        weights = jnp.asarray(weights, x.dtype)
    options = EMOptions(chunk_size=mixture._chunk(chunk_size), missing=max_missing)
    return _em_step(mixture, Rows(x, weights), options=options)


@functools.partial(jax.jit, static_argnames="options")
def _em_step(mixture, rows, *, options):
    return engine.step(mixture, rows, options)[:2]


@functools.partial(jax.jit, static_argnames="batched")
def _start_from(mixture, batched=False):
    """The loop state of a warm start; with ``batched``, as a batch of one restart."""
    state = engine.start_loop(mixture)
    return jax.tree.map(lambda a: a[None], state) if batched else state


@functools.partial(jax.jit, static_argnames=("options", "batched"))
def _advance(states, rows, tol, prior, receiver, first, until, *, options, batched):
    return segments.advance_all(
        states, rows, tol, options, prior=prior, first=first, until=until, receiver=receiver, batched=batched
    )


@functools.partial(jax.jit, static_argnames=("options", "batched"))
def _finish(states, rows, tol, prior, *, options, batched):
    """The final log-likelihood and diagnostics, and the best restart and its index (0 for one state)."""
    results = segments.finish_all(states, rows, tol, options, prior=prior, batched=batched)
    return best_restart(results) if batched else (results, jnp.int32(0))


def start_restart(family, k, method, key, rows: Rows, options: EMOptions, n_active=None, classes=None):
    """The starting mixture of one restart (equal weights when they are not updated); ``classes`` for "hc"."""
    mixture = initialize(
        method, family, k, key, rows.x, rows.weights, options.chunk_size, rows.labels, n_active, classes
    )
    if not options.update_weights and n_active is None:
        mixture = Mixture(jnp.full((k,), 1.0 / k, rows.x.dtype), mixture.params, family)
    return mixture


def best_restart(results: engine.FitResult):
    """The restart with the highest final log-likelihood, with every restart's diagnostics, and its index."""
    lls = results.log_likelihood
    best = jnp.argmax(jnp.where(jnp.isnan(lls), -jnp.inf, lls))
    chosen = jax.tree.map(lambda a: a[best], results)
    return chosen._replace(
        all_log_likelihoods=results.log_likelihood,
        all_n_iter=results.n_iter,
        all_converged=results.converged,
        all_n_collapsed=results.n_collapsed,
    ), best


@functools.partial(jax.jit, static_argnames=("family", "k", "method", "options"))
def _start_restarts(keys, rows, classes, *, family, k, method, options):
    return _starts(keys, rows, family, k, method, options, classes)


def _starts(keys, rows: Rows, family, k, method, options: EMOptions, classes=None):
    """The loop states of the restarts started from ``keys`` (traced); ``classes`` for "hc"."""

    def one(axes, key):
        return engine.start_loop(
            start_restart(family, k, method, key, rows, options.replace(axes=axes), classes=classes)
        )

    return blocks.vmap_restarts(one, options.axes)(keys)


@functools.partial(jax.jit, static_argnames=("family", "k", "method", "options", "plan", "weighted"))
def _start_restarts_on_mesh(keys, rows, classes, *, family, k, method, options, plan, weighted):
    """The restarts' starting states, initialised from the N valid rows of the rows split over ``plan``'s devices.

    With the user's weights only when ``weighted``: the padding's weights
    are not theirs.
    """
    valid = Rows(
        devices.valid_rows(plan, rows.x),
        devices.valid_rows(plan, rows.weights) if weighted else None,
        devices.valid_rows(plan, rows.labels),
    )
    return _starts(keys, valid, family, k, method, options, classes)


@functools.partial(jax.jit, static_argnames=("options", "plan"))
def _advance_on_mesh(states, rows, tol, prior, receiver, first, until, *, options, plan):
    return devices.advance_loops(plan, states, rows, tol, prior, receiver, first, until, options)


@functools.partial(jax.jit, static_argnames=("options", "plan"))
def _finish_on_mesh(states, rows, tol, prior, *, options, plan):
    return best_restart(devices.finish_loops(plan, states, rows, tol, prior, options))
