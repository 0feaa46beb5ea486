"""A fit's EM loop as a host loop over compiled segments: interruptible, resumable, its history grown as it runs.

The EM iterations of :func:`mixtures.fit` and :func:`mixtures.select` run as
calls of one compiled program, each call a segment of iterations sized to
take about :data:`SECONDS` (at most :data:`SEGMENT` iterations). Between
segments the host regains control, so:

- Ctrl-C (``KeyboardInterrupt``) stops a fit within a segment, with a note
  saying how far it got (inside a compiled call, Python cannot act on it);
- an exception raised by the ``callback`` is raised in the caller's thread,
  with its own type, and the fit stops;
- the history grows with the iterations run: memory is independent of
  ``max_iter``;
- a :class:`~mixtures._src.fitting.checkpoints.Checkpoint` saves the state
  every few iterations, and a fit given the same checkpoint resumes where it
  stopped, to the same result as an uninterrupted fit.

Segment lengths change how the iterations are grouped into calls, never
what an iteration computes: the result does not depend on them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import blocks, progress
from mixtures._src.engine import em as engine

__all__ = [
    "SECONDS", "SEGMENT", "advance_all", "any_unconverged", "finish_all", "handle_interrupt", "interrupts_deferred",
    "raise_if_interrupted", "run",
]

SEGMENT = 1024
"""The most iterations in one segment: the length of a segment's history buffer."""

SECONDS = 0.25
"""The wall time a segment aims at: how long a Ctrl-C may wait."""


_requested = threading.Event()
_deferring = [0]


def handle_interrupt(signum, frame):
    """A SIGINT handler: notes the request, and raises ``KeyboardInterrupt`` unless a fit defers it.

    Inside :func:`interrupts_deferred` (a fit running) it only notes it:
    raised there, the exception could land in JAX's own code, such as a
    progress callback run on the main thread (where JAX turns it into an
    opaque runtime error) or a compilation. The fit raises it at its next
    segment boundary. A request noted while ``KeyboardInterrupt`` was lost
    (Python drops exceptions raised in garbage-collection callbacks) is
    honoured by the next fit at its start.
    """
    _requested.set()
    if not _deferring[0]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_deferred():
    """Holds Ctrl-C for :func:`raise_if_interrupted` while a fit runs (main thread, default handler only).

    Takes over SIGINT when its handler is Python's default (or already
    :func:`handle_interrupt`, which the command line installs); a handler of
    the user's own is left alone, as is any thread but the main one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    current = signal.getsignal(signal.SIGINT)
    if current is not signal.default_int_handler and current is not handle_interrupt:
        yield
        return
    if current is signal.default_int_handler:
        _requested.clear()
        signal.signal(signal.SIGINT, handle_interrupt)
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
        if current is signal.default_int_handler:
            signal.signal(signal.SIGINT, current)


def raise_if_interrupted() -> None:
    """Raises ``KeyboardInterrupt`` if Ctrl-C was pressed since the fit began (see :func:`interrupts_deferred`)."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt


def advance_all(states, rows, tol, options, *, prior=None, first, until, receiver=0, batched=True):
    """One segment for every restart (states with a leading axis R) or for one state (``batched=False``).

    Traced under ``jit``. Returns ``(states, history, running, n_iter)``:
    the new states, the (R, SEGMENT) or (SEGMENT,) values of iterations
    ``first``.. (NaN after each restart's last), whether any restart has not
    converged (the host's loop stops at ``max_iter``), and the most
    iterations any restart has run.
    """
    dtype = rows.x.dtype

    def one(axes, state, restart):
        history = jnp.full((SEGMENT,), jnp.nan, dtype)
        return engine.advance(
            state, rows, tol, options.replace(axes=axes), history, prior=prior, until=until, first=first,
            restart=restart, receiver=receiver,
        )

    if batched:
        n = jax.tree.leaves(states)[0].shape[0]
        states, history = blocks.vmap_restarts(one, options.axes)(states, jnp.arange(n))
    else:
        states, history = one(options.axes, states, 0)
    return states, history, any_unconverged(states, tol), jnp.max(states.n_iter)


def any_unconverged(states, tol) -> jax.Array:
    """Whether any restart's loop state (leading axis R, or one) has not converged.

    A segment reports this rather than :func:`~mixtures.engine.running`:
    :func:`run` stops at its own ``max_iter``, so one compiled segment program
    serves every ``max_iter``.
    """
    return jnp.any(~engine.has_converged(states.log_likelihood, states.previous, tol))


def finish_all(states, rows, tol, options, *, prior=None, batched=True) -> engine.FitResult:
    """:func:`~mixtures.engine.finish_loop` for every restart (leading axis R), or for one state; no history.

    Traced under ``jit``. The history is the host's (see :func:`run`): the
    result's is empty, to be replaced.
    """
    empty = jnp.zeros((0,), rows.x.dtype)

    def one(axes, state):
        return engine.finish_loop(state, rows, tol, options.replace(axes=axes), empty, prior=prior)

    if batched:
        return blocks.vmap_restarts(one, options.axes)(states)
    return one(options.axes, states)


def run(
    start: Callable[[], object],
    advance: Callable[[object, int, int], tuple],
    *,
    max_iter: int,
    receiver=0,
    checkpoint=None,
    what: str = "the fit",
):
    """Runs ``advance`` segment after segment from ``start()`` (or the checkpoint) until no restart goes on.

    Args:
      start: makes the initial states (a compiled call).
      advance: ``advance(states, first, until)`` runs iterations ``first``
        up to ``until`` and returns :func:`advance_all`'s four values.
      max_iter: the most iterations.
      receiver: the progress receiver whose callback's exception is raised
        after each segment.
      checkpoint: a :class:`~mixtures._src.fitting.checkpoints.Checkpoint`,
        or None.
      what: how an interruption's note names the call.

    Returns:
      ``(states, history)``: the final states and the host history, the
      batch axes of a segment's history followed by the iterations run.

    Raises:
      KeyboardInterrupt: with a note saying how many iterations ran (and
        what the checkpoint holds).
    """
    reached = [0]  # the iterations reached, for an interruption's note
    with interrupts_deferred():
        try:
            return _run(start, advance, max_iter, receiver, checkpoint, reached)
        except KeyboardInterrupt as interrupt:
            where = f" {checkpoint.holds('iteration')}" if checkpoint else ""
            interrupt.add_note(
                f"{what} was interrupted after {reached[0]} of at most {max_iter} EM iterations.{where}"
            )
            raise


def _run(start, advance, max_iter, receiver, checkpoint, reached):
    """:func:`run`'s loop; ``reached[0]`` follows the iterations reached."""
    raise_if_interrupted()
    saved = None if checkpoint is None else checkpoint.load()
    if saved is None:
        states, parts, first, going = start(), [], 0, True
    else:
        states, history, first, going = saved
        parts = [history]
    reached[0] = first
    length = 1
    raise_if_interrupted()
    while going and first < max_iter:
        until = min(first + length, max_iter)
        if checkpoint is not None:
            until = min(until, checkpoint.next_after(first))
        began = time.perf_counter()
        states, history, going, last = advance(states, first, until)
        history, going, last = jax.device_get((history, going, last))  # one wait, one transfer
        going, last = bool(going) and int(last) < max_iter, int(last)
        progress.raise_pending(receiver)
        elapsed = time.perf_counter() - began
        parts.append(history[..., : last - first])
        length = _next_length(last - first, elapsed)
        first = reached[0] = last
        if checkpoint is not None and (checkpoint.due(first) or not going):
            checkpoint.save(states, np.concatenate(parts, axis=-1), first, going)
        raise_if_interrupted()
    history = np.concatenate(parts, axis=-1) if parts else None
    return states, history


def _next_length(ran: int, elapsed: float) -> int:
    """Iterations for the next segment: about :data:`SECONDS` at the last segment's rate, in 1..SEGMENT.

    The first segment runs one iteration (its time includes compiling). In
    a run over several processes every process must run the same segments:
    the first process's choice is sent to all.
    """
    length = SEGMENT if ran <= 0 else int(np.clip(SECONDS * ran / max(elapsed, 1e-9), 1, SEGMENT))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        length = int(multihost_utils.broadcast_one_to_all(np.int32(length)))
    return length
