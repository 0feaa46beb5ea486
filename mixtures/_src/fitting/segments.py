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

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import blocks, progress
from mixtures._src.engine import em as engine

__all__ = ["SECONDS", "SEGMENT", "advance_all", "run"]

SEGMENT = 1024
"""The most iterations in one segment: the length of a segment's history buffer."""

SECONDS = 0.25
"""The wall time a segment aims at: how long a Ctrl-C may wait."""


def advance_all(states, rows, tol, options, *, prior=None, first, until, receiver=0, batched=True):
    """One segment for every restart (states with a leading axis R) or for one state (``batched=False``).

    Traced under ``jit``. Returns ``(states, history, running, n_iter)``:
    the new states, the (R, SEGMENT) or (SEGMENT,) values of iterations
    ``first``.. (NaN after each restart's last), whether any restart goes
    on, and the most iterations any restart has run.
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
    going = jnp.any(engine.running(states, tol, options.max_iter))
    return states, history, going, jnp.max(states.n_iter)


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
    saved = None if checkpoint is None else checkpoint.load()
    if saved is None:
        states, parts, first, going = start(), [], 0, True
    else:
        states, history, first, going = saved
        parts = [history]
    length = 1
    try:
        while going and first < max_iter:
            until = min(first + length, max_iter)
            if checkpoint is not None:
                until = min(until, checkpoint.next_after(first))
            began = time.perf_counter()
            states, history, going, reached = advance(states, first, until)
            going, reached = (v.item() for v in jax.device_get((going, reached)))
            progress.raise_pending(receiver)
            elapsed = time.perf_counter() - began
            parts.append(np.asarray(history)[..., : reached - first])
            length = _next_length(reached - first, elapsed)
            first = reached
            if checkpoint is not None and (checkpoint.due(first) or not going):
                checkpoint.save(states, np.concatenate(parts, axis=-1), first, going)
    except KeyboardInterrupt as interrupt:
        where = f" {checkpoint.holds('iteration')}" if checkpoint else ""
        interrupt.add_note(f"{what} was interrupted after {first} of at most {max_iter} EM iterations.{where}")
        raise
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
