"""Online (stochastic) EM: running statistics updated minibatch by minibatch.

Cappé and Moulines (2009). The statistics of the data seen so far are kept as
a running average per row: after each minibatch,

    s ← (1 − ρₜ) s + ρₜ ŝ(batch),

with ŝ the batch's responsibility-weighted statistics divided by its total
row weight, then the M-step runs from s. The step sizes ρₜ come from any
optax-style schedule (a callable step → ρ); Robbins–Monro conditions
(Σρₜ = ∞, Σρₜ² < ∞) hold for :func:`polynomial_decay` with a power in
(0.5, 1]. Memory is one minibatch, whatever the length of the stream.

Where the running statistics start:

* ``init(mixture)``: empty, and read bias-corrected: they are divided by
  their mass 1 − Πₜ(1 − ρₜ), the share of the average that data already
  fills. The first update then takes its batch's statistics whole (so the
  first batch should hold enough rows for every component, as any EM on a
  sample that size), and early batches are averaged evenly until the
  schedule's ρₜ is the smaller step. The starting mixture only decides the
  first batch's responsibilities.
* ``init(mixture, x)``: the statistics of a sample x under the starting
  mixture (one E-step), with mass 1. The sample then weighs like data
  already seen: the first update keeps a share 1 − ρ₀ of it, so a schedule
  whose ρ₀ is about B / (n + B), for n sample rows and batches of B, treats
  the sample as n rows of the stream. :func:`fit_online` starts this way.

A component that no batch has given responsibility keeps its parameters
(the engine's empty-component rule), with a weight near zero.

Statistics that depend on the parameters (the Gaussian's, taken in each
component's whitened frame) are moved into the new parameters' frame after
every M-step by :meth:`~mixtures.Family.transport_stats`, exactly.

The API is optax's: :func:`online_em` returns a pair of pure functions,
``init(mixture, x=None) -> OnlineState`` and
``update(state, x, sample_weight=None) -> OnlineState``, for a user's own
loop over an endless stream; both work under ``jax.jit`` and ``jax.vmap``
(restarts side by side). :func:`fit_online` is the loop over a finite
source (an array, a memmap, a ``.npy`` file or a callable returning batches),
for one or more epochs.

Only maximum likelihood: a conjugate prior's strength is relative to the
number of rows, which an endless stream does not have.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core.incomplete import by_missing, check_missing, incomplete_rows, row_width, without_empty_rows
from mixtures._src.core import blocks
from mixtures._src.fitting import checkpoints, segments, sources
from mixtures._src.engine import em as engine
from mixtures._src.fitting import fit as fitting
from mixtures._src.fitting import streaming
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture
from mixtures._src.engine.options import EMOptions, Rows

__all__ = ["OnlineEM", "OnlineResult", "OnlineState", "fit_online", "online_em", "polynomial_decay"]


class OnlineState(NamedTuple):
    """Everything online EM carries from one minibatch to the next; a pytree of arrays.

    Attributes:
      mixture: the current :class:`~mixtures.Mixture`, the M-step of the
        running statistics.
      counts: (K,) running Σ responsibility per row (sums to one after the
        first update; zeros before).
      stats: the running statistics per row, in the frame of ``mixture``'s
        parameters (the family's :meth:`~mixtures.Family.accumulate` layout).
      mass: scalar, 1 − Πₜ(1 − ρₜ): how much of the running average data
        fills (0 before the first update, 1 once some ρₜ = 1).
      step: int32 scalar, the number of updates with a positive batch weight
        so far; the schedule is evaluated at it.
      log_likelihood: scalar, running estimate of the mean log-likelihood per
        row: each batch's mean log-likelihood under the mixture *before* its
        update, averaged with the same ρₜ and bias correction as the
        statistics (0 before the first update).
      averaged: with ``averaging_start``, the Polyak–Ruppert averaged mixture:
        the M-step of the running statistics averaged evenly over the
        updates from step ``averaging_start`` on (equal to ``mixture``
        before that step); None without averaging.
      averaged_counts: (K,) counts of that average; None without averaging.
      averaged_stats: statistics of that average, in the frame of
        ``mixture``; None without averaging.
    """

    mixture: Mixture
    counts: jax.Array
    stats: Any
    mass: jax.Array
    step: jax.Array
    log_likelihood: jax.Array
    averaged: Mixture | None = None
    averaged_counts: jax.Array | None = None
    averaged_stats: Any = None


class OnlineEM(NamedTuple):
    """The pure functions of online EM, as :func:`online_em` returns them.

    Attributes:
      init: ``init(mixture, x=None, sample_weight=None) -> OnlineState``:
        running statistics at a starting mixture, empty or those of a sample
        x (N, D) (see :mod:`mixtures.online`).
      update: ``update(state, x, sample_weight=None) -> OnlineState``: one
        minibatch x (B, D), optionally with (B,) non-negative row weights.
    """

    init: Callable[[Mixture], OnlineState]
    update: Callable[..., OnlineState]


@dataclasses.dataclass(frozen=True)
class _Config:
    schedule: Callable
    averaging_start: int | None
    update_weights: bool
    chunk_size: int | None
    missing: bool = False


def polynomial_decay(power: float = 0.6, offset: float = 0.0) -> Callable[[Any], jax.Array]:
    """Robbins–Monro step sizes ρₜ = (t + 1 + offset)^(−power) for t = 0, 1, …; an optax-style schedule.

    With power in (0.5, 1] the steps satisfy Σρₜ = ∞ and Σρₜ² < ∞, the
    conditions under which online EM converges (Cappé and Moulines, 2009).
    Powers near 0.5 forget old batches faster and, with Polyak–Ruppert
    averaging (``online_em(averaging_start=...)``), reach the best rate;
    power 1 with offset 0 weighs every batch equally (a plain running mean).
    A positive offset makes the first steps smaller. optax has no schedule of
    this form (its ``polynomial_schedule`` moves between two values over a
    fixed number of steps); any optax schedule with values in (0, 1] also
    works as ``step_size``.

    Args:
      power: the exponent, 0.5 < power ≤ 1.
      offset: non-negative shift of the step count.

    Returns:
      A function of the step count (an integer or int32 array) returning ρₜ
      as a scalar array of the default float dtype.

    Raises:
      ValueError: if ``power`` is outside (0.5, 1] or ``offset`` is negative
        or not finite.

    Example:
      >>> from mixtures.online import polynomial_decay
      >>> rho = polynomial_decay(power=1.0, offset=1.0)
      >>> [round(float(rho(t)), 4) for t in range(3)]
      [0.5, 0.3333, 0.25]
    """
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise TypeError(f"`power` must be a real number in (0.5, 1]; received {power!r}.")
    power = float(power)
    if not 0.5 < power <= 1.0:
        raise ValueError(
            f"`power` must be in (0.5, 1] (Robbins–Monro: Σρ = ∞ and Σρ² < ∞); received {power}."
        )
    return _PolynomialDecay(power, checks.non_negative_float(offset, "offset"))


@dataclasses.dataclass(frozen=True)
class _PolynomialDecay:
    """ρₜ = (t + 1 + offset)^(−power); compared and hashed by value, so equal schedules share compiled updates."""

    power: float
    offset: float

    def __call__(self, step):
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
        return (jnp.asarray(step, dtype) + (1.0 + self.offset)) ** (-self.power)


@dataclasses.dataclass(frozen=True)
class _Constant:
    value: float

    def __call__(self, step):
        del step
        return self.value


@dataclasses.dataclass(frozen=True, eq=False)
class _ByIdentity:
    """An unhashable schedule, hashed by identity so that it can configure a compiled update."""

    schedule: Callable

    def __call__(self, step):
        return self.schedule(step)


def online_em(
    step_size=None,
    *,
    averaging_start: int | None = None,
    update_weights: bool = True,
    chunk_size: int | None = None,
    missing: str | None = None,
) -> OnlineEM:
    """Online EM as an optax-style pair of pure functions, ``init`` and ``update``.

    ``update`` runs the E-step on one minibatch under the current mixture,
    blends its per-row statistics into the running ones with weight ρₜ
    (bias-corrected, see :mod:`mixtures.online`), takes the M-step and moves
    the running statistics into the new parameters' frame. It is compiled
    once per minibatch shape (the family is static); keep the batch shape
    fixed and pass zero ``sample_weight`` for padding rows. Called on host
    arrays, ``update`` refuses a batch whose weights are all zero, as
    :func:`mixtures.fit` refuses such data; under ``jax.jit`` (or in
    :func:`fit_online`, which pads batches) such a batch leaves the state
    unchanged.

    Inside the compiled update ρₜ is clipped to [0, 1]: a value above 1 acts
    as 1 (the batch replaces the statistics), a value ≤ 0 or NaN as 0 (the
    statistics stay as they are; the step count still advances).

    Args:
      step_size: the step sizes ρₜ: a float in (0, 1] (constant), or a
        schedule, any callable from the int32 step count to a scalar, such as
        :func:`polynomial_decay` or an optax schedule
        (``optax.exponential_decay(0.5, 100, 0.5)``). Default
        ``polynomial_decay(0.6)``.
      averaging_start: None (no averaging) or the step count from which the
        running statistics are also averaged evenly (Polyak–Ruppert); the
        state then carries the averaged mixture in ``state.averaged``.
      update_weights: if False the mixing weights stay at the initial
        mixture's.
      chunk_size: rows per block of a minibatch's E-step (memory
        O(chunk_size × K × D)); default chosen from K and D.
      missing: None (NaN refused) or "marginalize": NaN marks a missing
        entry, and each row's observed entries are used (see
        :func:`mixtures.fit`); a row with nothing observed gets weight zero.
        ``update`` compiles once per number of missing entries that a batch's
        rows reach at most (D for traced batches).

    Returns:
      An :class:`OnlineEM` ``(init, update)``.

    Raises:
      TypeError, ValueError: for a step size that is not a float in (0, 1] or
        a callable returning a scalar, or invalid options.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures.online import online_em, polynomial_decay
      >>> x = np.asarray(mx.datasets.load_old_faithful())
      >>> g = mx.Gaussian("full")
      >>> start = mx.Mixture(np.array([0.5, 0.5]), g.make_params(x[[0, 1]], np.stack([np.cov(x.T)] * 2)), g)
      >>> opt = online_em(polynomial_decay(0.6), averaging_start=80)
      >>> state = opt.init(start)
      >>> for epoch in range(20):
      ...     for batch in np.split(x, 8):  # minibatches of 34 rows
      ...         state = opt.update(state, batch)
      >>> int(state.step), round(float(state.mixture.score(x)), 2), round(float(state.averaged.score(x)), 2)
      (160, -4.16, -4.16)
      >>> round(float(mx.fit(x, g, 2, init=start, key=None).log_likelihood), 2)  # batch EM
      -4.16
    """
    config = _configure(step_size, averaging_start, update_weights, chunk_size, missing)

    def init(mixture: Mixture, x=None, sample_weight=None) -> OnlineState:
        """Running statistics at ``mixture``: empty, or those of the sample ``x`` (jit- and vmap-compatible)."""
        _check_mixture(mixture)
        if x is None:
            if sample_weight is not None:
                raise ValueError("`sample_weight` needs a sample `x` to weigh; received x=None.")
            return _init(config, mixture, None, None)
        rows, weights, max_missing = _check_batch(mixture, x, sample_weight, config.missing)
        return _init(config, mixture, rows, weights, max_missing)

    def update(state: OnlineState, x, sample_weight=None) -> OnlineState:
        """One minibatch x (B, D) with optional (B,) row weights; returns the new state."""
        if not isinstance(state, OnlineState):
            raise TypeError(f"`state` must be an OnlineState from init; received {type(state).__name__}.")
        if (state.averaged is None) != (config.averaging_start is None):
            raise ValueError(
                "`state` was made by an online_em with a different `averaging_start`; "
                "make it with this one's init."
            )
        rows, weights, max_missing = _check_batch(state.mixture, x, sample_weight, config.missing)
        return _update(config, state, rows, weights, max_missing)

    return OnlineEM(init, update)


# -- validation -----------------------------------------------------------------


def _configure(step_size, averaging_start, update_weights, chunk_size, missing=None) -> _Config:
    schedule = _check_step_size(step_size)
    if averaging_start is not None:
        if isinstance(averaging_start, bool) or not isinstance(averaging_start, numbers.Integral):
            raise TypeError(f"`averaging_start` must be None or a non-negative integer; received {averaging_start!r}.")
        averaging_start = int(averaging_start)
        if averaging_start < 0:
            raise ValueError(f"`averaging_start` must be None or a non-negative integer; received {averaging_start}.")
    if not isinstance(update_weights, bool):
        raise TypeError(f"`update_weights` must be True or False; received {update_weights!r}.")
    if chunk_size is not None:
        chunk_size = checks.positive_int(chunk_size, "chunk_size")
    return _Config(schedule, averaging_start, update_weights, chunk_size, check_missing(missing))


def _check_step_size(step_size) -> Callable:
    if step_size is None:
        return polynomial_decay()
    if isinstance(step_size, bool):
        raise TypeError(f"`step_size` must be a float in (0, 1] or a schedule (step -> ρ); received {step_size!r}.")
    if isinstance(step_size, numbers.Real):
        value = float(step_size)
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise ValueError(f"`step_size` must be in (0, 1]; received {value}.")
        return _Constant(value)
    if not callable(step_size):
        raise TypeError(
            "`step_size` must be a float in (0, 1] or a schedule, a callable from the step count to ρ "
            f"(e.g. mixtures.online.polynomial_decay(0.6) or an optax schedule); received {step_size!r}."
        )
    try:
        out = jax.eval_shape(step_size, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as err:  # any failure of the user's callable on a traced step
        raise TypeError(
            f"`step_size` must accept the int32 step count as a JAX array; calling it failed with "
            f"{type(err).__name__}: {err}"
        ) from None
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(
            f"`step_size` must return a real scalar for a step count; it returned {out!r}."
        )
    try:
        hash(step_size)
    except TypeError:
        return _ByIdentity(step_size)
    return step_size


def _check_schedule_values(schedule, n_steps: int) -> np.ndarray:
    """Refuses a schedule whose ρₜ, for a step t that :func:`fit_online` will take, is not in (0, 1].

    The compiled update clips ρₜ to [0, 1] (NaN to 0), which is right for
    :func:`online_em` under ``jax.jit``; :func:`fit_online` knows its steps
    0 … n_steps − 1 in advance and evaluates the schedule on all of them
    at once (one small compiled program), so that such a value is an error
    naming the step instead of a silent clip. Returns the values, as the
    schedule gives them.
    """
    given = _schedule_values(schedule, n_steps)
    values = given.astype(np.float64)
    bad = np.flatnonzero(~((values > 0) & (values <= 1)))
    if len(bad):
        t = int(bad[0])
        raise ValueError(
            f"`step_size` must give step sizes in (0, 1] at every step; the schedule gives {values[t]} at step "
            f"{t} (of the {n_steps} steps this fit takes: n_epochs × batches)."
        )
    return given


def _refuse_gradient_family(family, name: str) -> None:
    if family.m_step_needs_data:
        raise ValueError(
            f"`{name}` must have an M-step from summed statistics for online EM; {type(family).__name__} does "
            "not (its M-step takes optimiser steps over the data): use mx.fit, on a sample if the data is large."
        )


def _check_mixture(mixture) -> None:
    if not isinstance(mixture, Mixture):
        raise TypeError(f"`mixture` must be a mixtures.Mixture; received {type(mixture).__name__}.")
    family = mixture.family
    _refuse_gradient_family(family, "mixture.family")
    checks.hashable_family(family, "mixture.family")
    leaves = jax.tree.leaves((mixture.weights, mixture.params))
    if any(checks.is_traced(leaf) for leaf in leaves):
        return
    weights = np.asarray(mixture.weights, np.float64)
    if weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=1e-5):
        raise ValueError(f"`mixture.weights` must be K non-negative numbers summing to 1; received {weights}.")
    for leaf in jax.tree.leaves(mixture.params):
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError("`mixture.params` must be finite.")


def _check_batch(mixture: Mixture, x, sample_weight, missing: bool):
    """The minibatch as a (B, D) array of the mixture's dtype, its weights and M; checked on the host unless traced.

    With ``missing``, M is the most missing entries of a row with an observed
    entry (D for a traced batch) and rows with nothing observed get weight
    zero; else M is 0.
    """
    d = mixture.n_features
    if missing:
        check_missing("marginalize", mixture.family)
    if checks.is_traced(x):
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"`x` must have shape (B, {d}); received shape {tuple(x.shape)}.")
        rows = x.astype(mixture.dtype)
        weights = checks.as_sample_weight(sample_weight, rows.shape[0], dtype=rows.dtype)
        return rows, weights, d if missing else 0
    if not missing:
        rows = checks.as_data(x, "x", n_features=d)
        mixture.family.check_data(np.asarray(rows))
        rows = rows if rows.dtype == mixture.dtype else checks.to_device(np.asarray(rows), mixture.dtype)
        return rows, checks.as_sample_weight(sample_weight, rows.shape[0], dtype=rows.dtype), 0
    found = incomplete_rows(x, mixture.family, "x", d, drop=False)
    rows = checks.to_device(found.x.astype(mixture.dtype))
    weights = checks.as_sample_weight(sample_weight, rows.shape[0], dtype=rows.dtype)
    kept = without_empty_rows(found.x.astype(rows.dtype), weights)
    weights = weights if kept is weights else checks.to_device(kept)
    n_missing = np.sum(np.isnan(found.x), axis=1)
    return rows, weights, int(np.max(np.where(n_missing == found.x.shape[1], 0, n_missing)))  # rows that observe something


# -- the update -----------------------------------------------------------------


def _init(config: _Config, mixture: Mixture, x, weights, max_missing: int = 0) -> OnlineState:
    family = mixture.family
    dtype = mixture.dtype
    k, d = mixture.n_components, mixture.n_features
    params = jax.tree.map(lambda a: _cast(a, dtype), mixture.params)
    mixture = Mixture(_cast(mixture.weights, dtype), params, family)
    shapes = jax.eval_shape(
        lambda p: family.accumulate(p, jnp.zeros((1, d), dtype), jnp.zeros((1, k), dtype)), params
    )
    zeros = jax.tree.map(lambda s: checks.to_device(np.zeros(s.shape, s.dtype)), shapes)
    zero_counts = checks.to_device(np.zeros((k,), dtype))
    step = checks.to_device(np.zeros((), np.int32))
    if x is None:
        counts, stats = zero_counts, zeros
        mass = log_likelihood = checks.to_device(np.zeros((), dtype))
    else:
        counts, stats, log_likelihood = _sample_stats(mixture, x, weights, config.chunk_size, max_missing)
        mass = checks.to_device(np.ones((), dtype))
    if config.averaging_start is None:
        return OnlineState(mixture, counts, stats, mass, step, log_likelihood)
    return OnlineState(mixture, counts, stats, mass, step, log_likelihood, mixture, zero_counts, zeros)


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _sample_stats(mixture: Mixture, x, weights, chunk_size, max_missing=0):
    """Per-row counts, statistics and mean log-likelihood of the sample x under ``mixture``."""
    chunk = chunk_size or blocks.default_chunk_size(mixture.n_components, row_width(mixture.n_features, max_missing))
    sums = engine.accumulate(mixture, Rows(x, weights), EMOptions(chunk_size=chunk, missing=max_missing), once=True)
    total = jnp.asarray(x.shape[0], x.dtype) if weights is None else jnp.sum(weights)
    return sums.counts / total, jax.tree.map(lambda s: s / total, sums.stats), sums.log_likelihood / total


def _cast(a, dtype):
    if checks.is_traced(a) or isinstance(a, jax.Array):
        return a if a.dtype == dtype or not jnp.issubdtype(a.dtype, jnp.floating) else a.astype(dtype)
    a = np.asarray(a)
    return checks.to_device(a, dtype if np.issubdtype(a.dtype, np.floating) else None)


@functools.partial(jax.jit, static_argnames=("config", "max_missing"))
def _update(config: _Config, state: OnlineState, x, weights, max_missing: int = 0) -> OnlineState:
    mixture = state.mixture
    family = mixture.family
    dtype = mixture.dtype
    chunk = config.chunk_size or blocks.default_chunk_size(mixture.n_components, row_width(mixture.n_features, max_missing))
    sums = engine.accumulate(mixture, Rows(x, weights), EMOptions(chunk_size=chunk, missing=max_missing))
    total = jnp.asarray(x.shape[0], dtype) if weights is None else jnp.sum(weights)
    has_rows = total > 0

    rho = jnp.asarray(config.schedule(state.step), dtype)
    rho = jnp.where(rho > 0, jnp.minimum(rho, 1), 0)  # NaN -> 0
    kept = (1 - rho) * state.mass
    mass = kept + rho
    moves = has_rows & (mass > 0)
    mass_or_one = jnp.where(moves, mass, 1)
    old_share = kept / mass_or_one
    new_share = rho / mass_or_one
    per_row = new_share / jnp.where(has_rows, total, 1)

    def blend(old, new):
        return old_share * old + per_row * new

    counts = blend(state.counts, sums.counts)
    stats = jax.tree.map(blend, state.stats, sums.stats)
    batch_ll = sums.log_likelihood / jnp.where(has_rows, total, 1)
    previous_ll = jnp.where(old_share > 0, old_share * state.log_likelihood, 0)  # 0 · (−∞) is not NaN here
    log_likelihood = previous_ll + new_share * batch_ll

    # The running statistics are per row; the M-step's floors (10·ε on a count) are sized for counts
    # in rows, so it sees them scaled to one batch's rows. Otherwise the M-step is scale-free.
    rows = x.shape[0]

    def in_rows(c, s):
        return engine.Sums(c * rows, jax.tree.map(lambda a: a * rows, s), log_likelihood)

    new = engine.maximize(mixture, in_rows(counts, stats), config.update_weights)
    averaged = averaged_counts = averaged_stats = None
    if config.averaging_start is None:
        stats = family.transport_stats(stats, counts, mixture.params, new.params)
    else:
        started = state.step >= config.averaging_start
        n_averaged = (state.step - config.averaging_start + 1).astype(dtype)
        share = jnp.where(started, 1 / jnp.maximum(n_averaged, 1), 0)
        averaged_counts = state.averaged_counts + share * (counts - state.averaged_counts)
        averaged_stats = jax.tree.map(lambda a, s: a + share * (s - a), state.averaged_stats, stats)
        # One transport for both (stacked along the component axis), so that no two batched
        # triangular solves run side by side (see shared/JAX-CPU-NOTES.md); the averaged
        # mixture's M-step then depends on it.
        (stats, averaged_stats) = _transport_stacked(
            family, (stats, averaged_stats), (counts, averaged_counts), mixture.params, new.params
        )
        polyak = engine.maximize(
            Mixture(new.weights, new.params, family), in_rows(averaged_counts, averaged_stats), config.update_weights
        )
        averaged = jax.tree.map(lambda a, b: jnp.where(started, a, b), polyak, new)

    updated = OnlineState(
        new, counts, stats, mass, state.step, log_likelihood, averaged, averaged_counts, averaged_stats
    )
    kept_state = jax.tree.map(lambda a, b: jnp.where(moves, a, b), updated, state)
    return kept_state._replace(step=state.step + has_rows.astype(state.step.dtype))


def _transport_stacked(family, stats_list, counts_list, old, new):
    """``family.transport_stats`` of several statistics at once, stacked along the component axis."""
    n = len(stats_list)

    def stack(*trees):
        return jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=0), *trees)

    moved = family.transport_stats(
        stack(*stats_list), jnp.concatenate(counts_list), stack(*([old] * n)), stack(*([new] * n))
    )
    k = counts_list[0].shape[0]
    return tuple(jax.tree.map(lambda leaf: leaf[i * k : (i + 1) * k], moved) for i in range(n))


# -- the convenience loop ---------------------------------------------------------

DEFAULT_BATCH_SIZE = 1024
DEFAULT_INIT_SAMPLE_SIZE = 10_000


class OnlineResult(NamedTuple):
    """What :func:`fit_online` returns.

    Attributes:
      mixture: the final mixture (the M-step of the running statistics).
      averaged: the Polyak–Ruppert averaged mixture with ``averaging_start``,
        else None.
      log_likelihood: the final running estimate of the mean log-likelihood
        per row (``state.log_likelihood``; an estimate from the minibatches,
        not a pass over the data).
      history: (number of batches read,) NumPy array, the running estimate
        after each batch.
      n_steps: the number of updates (batches of positive weight).
      state: the final :class:`OnlineState`, to continue with
        ``online_em(...).update`` built with the same options.
    """

    mixture: Mixture
    averaged: Mixture | None
    log_likelihood: jax.Array
    history: np.ndarray
    n_steps: int
    state: OnlineState


def fit_online(
    batches,
    family,
    n_components: int,
    *,
    key,
    step_size=None,
    batch_size: int | None = None,
    sample_weight=None,
    n_epochs: int = 1,
    init="kmeans++",
    n_init: int = 1,
    init_sample_size: int = DEFAULT_INIT_SAMPLE_SIZE,
    init_max_iter: int = 100,
    averaging_start: int | None = None,
    update_weights: bool = True,
    chunk_size: int | None = None,
    prior=None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    missing: str | None = None,
) -> OnlineResult:
    """Fits a K-component mixture by online EM, one pass (or ``n_epochs``) over batches of the data.

    A first pass validates every batch (shape, dtype, finite values, the
    family's domain, weights) and draws a uniform sample of at most
    ``init_sample_size`` rows, before anything is compiled. The start is
    :func:`mixtures.fit` on that sample (``init``, ``n_init`` restarts, at
    most ``init_max_iter`` EM iterations), and the running statistics start
    as the sample's under it (``init(mixture, sample)``, see
    :mod:`mixtures.online`). Then every batch, padded with zero-weight rows
    to the longest batch's length so that the update compiles once, is one
    :func:`online_em` update, for ``n_epochs`` passes in the source's order.
    Online EM assumes the batches are alike (draws from the same
    distribution): shuffle sorted data once beforehand.

    Memory is one batch plus the sample, whatever the number of rows; each
    epoch reads the data once, where batch EM (:func:`mixtures.fit_stream`)
    reads it once per iteration.

    Only maximum likelihood: a conjugate prior's strength is relative to the
    number of rows, while online EM weighs each batch by its step size
    alone; use :func:`mixtures.fit_stream` for MAP-EM.

    Args:
      batches: the data, as :func:`mixtures.fit_stream` takes it: a (N, D)
        array, a ``numpy.memmap``, the path of a ``.npy`` file, a list of
        (B, D) arrays or ``(x, sample_weight)`` pairs, or a callable returning
        an iterator of such batches (called once per pass).
      family: the component family; not a
        :class:`~mixtures.GradientFamily`.
      n_components: number of components K, 1 ≤ K ≤ N.
      key: a JAX PRNG key for the initialisation (and the sample's seed);
        may be None with a warm start.
      step_size: as in :func:`online_em`, but a schedule is evaluated on every
        step the fit takes before it starts, and a value outside (0, 1]
        (NaN included) is refused with ``ValueError`` instead of clipped; default
        ``polynomial_decay(0.6, offset=S / B)`` with S the sample's rows and
        B the batch rows: the first step ρ₀ = (1 + S/B)^−0.6 is small when
        the sample is large against a batch, so the first updates keep
        most of the sample's statistics (S = 10⁴, B = 1024: ρ₀ ≈ 0.24, the
        sample weighing about three batches).
      batch_size: rows per batch read from an array, memmap or file (default
        1024); ignored for lists and callables.
      sample_weight: optional (N,) non-negative row weights of an array,
        memmap or ``.npy`` source (read block by block with the rows); a list
        or callable gives its weights in ``(x, sample_weight)`` pairs.
      n_epochs: passes over the data.
      init: a method of :func:`mixtures.fit`, run with EM on the sample, or a
        :class:`~mixtures.Mixture` to start from (used as is).
      n_init: restarts of the fit on the sample.
      init_sample_size: the bound on the sample's rows.
      init_max_iter: EM iterations of the fit on the sample, at most.
      averaging_start: as in :func:`online_em`: the update count from which
        the Polyak–Ruppert average runs; ``result.averaged`` is then set.
      update_weights: if False the mixing weights keep their initial values.
      chunk_size: rows per block inside a batch (memory O(chunk_size × K × D)).
      prior: must be None (see above).
      checkpoint: optional file path: the online state and the history are
        saved there every ``checkpoint_every`` batches and after the last,
        atomically (a NumPy ``.npz`` archive). If the file exists and holds
        the checkpoint of the same fit (same batches, in the same order and
        boundaries, with the same weights; same family, K, key or warm
        start, ``n_init``, ``n_epochs``, step sizes at every step,
        ``averaging_start``, ``update_weights``, chunk size,
        ``init_sample_size`` and ``init_max_iter``), the fit resumes from
        it without the initial fit on the sample: the batches already
        consumed are read (and validated) but not used again, across
        epochs, and the fit ends where an uninterrupted fit ends, to the
        last bit; a finished fit's checkpoint returns its result after the
        validating pass alone. The batches are identified by a SHA-256
        digest taken during that validating pass (no extra pass; only when
        ``checkpoint`` is given). A file that is not such a checkpoint is
        refused (``ValueError``) and left as it is. One process only.
      checkpoint_every: batches (updates) between checkpoints; by default
        one is written when 30 seconds have passed since the last.
      missing: None (NaN refused) or "marginalize": NaN marks a missing
        entry, as in :func:`mixtures.fit` (which fits the initialisation
        sample so); a row with nothing observed gets weight zero; a column
        with nothing observed in any batch is refused.

    Interrupting:
      The host regains control between batches, so Ctrl-C
      (``KeyboardInterrupt``) stops the fit within a batch, with a note on
      the exception saying how many batches were used and which the
      checkpoint holds.

    Returns:
      An :class:`OnlineResult`.

    Raises:
      TypeError, ValueError: for invalid arguments or data, naming them (a
        batch as ``batches[i]``), before anything is compiled.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures.online import fit_online
      >>> x = np.asarray(mx.datasets.load_old_faithful())[np.random.default_rng(0).permutation(272)]
      >>> r = fit_online(x, mx.Gaussian(), 2, key=jax.random.key(0), batch_size=32, n_epochs=4, init_sample_size=64)
      >>> r.n_steps, r.history.shape, bool(r.mixture.score(x) > -4.2)
      (36, (36,), True)
    """
    if not isinstance(family, Family):
        raise TypeError(f"`family` must be a mixtures.Family such as mx.Gaussian(); received {family!r}.")
    checks.hashable_family(family)
    _refuse_gradient_family(family, "family")
    k = checks.positive_int(n_components, "n_components")
    n_epochs = checks.positive_int(n_epochs, "n_epochs")
    n_init = checks.positive_int(n_init, "n_init")
    sample_size = checks.positive_int(init_sample_size, "init_sample_size")
    init_max_iter = checks.positive_int(init_max_iter, "init_max_iter")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else checks.positive_int(batch_size, "batch_size")
    if prior is not None:
        raise ValueError(
            "`prior` must be None: online EM fits by maximum likelihood only (a conjugate prior weighs against "
            "a number of rows, which a stream does not fix); use mx.fit_stream for MAP-EM."
        )
    config = _configure(step_size, averaging_start, update_weights, chunk_size, missing)
    checkpoint, checkpoint_every = checkpoints.check_checkpoint(checkpoint, checkpoint_every)
    warm = isinstance(init, Mixture)
    if warm:
        _refuse_gradient_family(init.family, "init.family")
    source, seen, key, positive_in_sample = streaming.scan_for_fit(
        batches, family, k, init=init, n_init=n_init, key=key, batch_size=batch_size,
        sample_weight=sample_weight, sample_size=sample_size, digest=checkpoint is not None, missing=missing,
    )
    d = seen.n_features
    max_missing = seen.max_missing
    dtype = seen.sample.dtype
    rows = seen.max_rows
    n_batches = seen.n_batches
    total = n_epochs * n_batches
    start = fitting._check_warm_start(init, family, k, d, dtype) if warm else None
    steps = None  # the step sizes of every step this fit can take, when computed
    if step_size is None:
        config = dataclasses.replace(config, schedule=_PolynomialDecay(0.6, positive_in_sample / rows))
    elif not isinstance(config.schedule, _Constant):
        steps = _check_schedule_values(config.schedule, total)
    host = seen.sample, seen.sample_weights
    sample = checks.to_device(seen.sample)
    sample_weights = None if seen.sample_weights is None else checks.to_device(seen.sample_weights, dtype)

    def begin():
        """The start: mx.fit on the sample (unless warm), and the sample's statistics under it."""
        mixture = start
        if not warm:
            x0, w0 = host
            if config.missing:  # the sample's rows with nothing observed (weight zero) are left out
                seen_rows = ~np.all(np.isnan(x0), axis=1)
                x0, w0 = x0[seen_rows], None if w0 is None else w0[seen_rows]
            mixture = fitting.fit(
                x0, family, k, key=key, init=init, n_init=n_init, max_iter=init_max_iter,
                sample_weight=w0, update_weights=update_weights, chunk_size=chunk_size, missing=missing,
            ).mixture
        return _init(config, mixture, sample, sample_weights, max_missing)

    saving = None
    if checkpoint is not None:
        # Everything the result depends on: the batches through the first pass's digest, the step
        # sizes through their values at every step this fit can take (a schedule has no stable name).
        identity = checkpoints.fingerprint(
            "fit_online", repr(family), k, n_init, start if warm else init, key, n_epochs,
            _schedule_values(config.schedule, total) if steps is None else steps, config.averaging_start,
            update_weights, chunk_size, init_max_iter, sample_size, rows, seen.digest,
        )
        saving = checkpoints.Checkpoint(
            checkpoint, checkpoint_every, identity,
            lambda: _state_shapes(
                begin, config, sample, sample_weights, family=family, k=k, init=None if warm else init, key=key
            ),
        )
    del seen
    # Everything is valid: only now are the fit's programs compiled.
    state, history, done = _resume(saving, begin)
    pending = False  # whether the state's estimate is still to be added to the history
    with segments.interrupts_deferred():  # Ctrl-C is raised between batches, never inside JAX
        try:
            for epoch in range(done // n_batches, n_epochs):
                for i, batch in enumerate(source.batches()):
                    segments.raise_if_interrupted()
                    if epoch * n_batches + i < done:
                        continue  # consumed before the checkpoint: read (and validated), not used again
                    x, w = sources.padded(batch, rows, source.name)
                    order = None if source.holes is None else by_missing(x)
                    if order is not None:  # rows by their number of missing entries, as mx.fit sorts them
                        x, w = x[order], w[order]
                    previous = state
                    state = _update(config, previous, jax.device_put(x), jax.device_put(w), max_missing)
                    # The next batch is read while this one is computed, and no further: waiting for the
                    # previous update keeps memory one batch ahead; its estimate is kept as a Python float.
                    if pending:
                        history.append(float(previous.log_likelihood))
                    pending = True
                    done += 1
                    if saving is not None and (saving.due(done) or done == total):
                        history.append(float(state.log_likelihood))
                        pending = False
                        saving.save(state, np.asarray(history), done, done < total)
        except KeyboardInterrupt as interrupt:
            where = f" {saving.holds('batch')}" if saving is not None else ""
            interrupt.add_note(
                f"mixtures.online.fit_online was interrupted after {done} of {total} batches ({n_epochs} epochs of "
                f"{n_batches}).{where}"
            )
            raise
    if pending:
        history.append(float(state.log_likelihood))
    return OnlineResult(state.mixture, state.averaged, state.log_likelihood, np.asarray(history), int(state.step), state)


def _resume(saving, begin):
    """``(state, history, done)``: from the checkpoint when it holds one, else the start and no batch done."""
    saved = None if saving is None else saving.load()
    if saved is None:
        return begin(), [], 0
    state, history, done, _ = saved
    return state, [float(v) for v in history], done


def _state_shapes(begin, config, sample, sample_weights, *, family, k, init, key):
    """The shapes of ``begin()``'s state without fitting the sample: mx.fit's mixture has its start's layout."""
    if init is None:  # a warm start: begin() only takes the sample's statistics
        return jax.eval_shape(begin)

    def traced():
        rows = Rows(sample, sample_weights)
        classes = jnp.zeros(sample.shape[:1], jnp.int32) if init == "hc" else None  # only its shape counts here
        mixture = fitting.start_restart(
            family, k, init, key, rows, EMOptions(chunk_size=config.chunk_size or 1024), classes=classes
        )
        return _init(config, mixture, sample, sample_weights)

    return jax.eval_shape(traced)


def _schedule_values(schedule, n_steps: int) -> np.ndarray:
    """The step sizes ρ₀ … ρ_{n_steps−1} as the schedule gives them (one small compiled program per schedule).

    The library's schedules are compared by value, a user's by identity:
    the same schedule is not compiled again on the next call.
    """
    return np.asarray(_evaluate_schedule(schedule, jnp.arange(n_steps, dtype=jnp.int32)))


@functools.partial(jax.jit, static_argnums=0)
def _evaluate_schedule(schedule, steps):
    return jax.vmap(schedule)(steps)
