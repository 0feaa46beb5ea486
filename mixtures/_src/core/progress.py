"""Delivery of per-iteration progress from compiled fits to a Python callable.

The compiled EM loop calls :func:`emit` through ``jax.debug.callback`` when it
was built with reporting on. The callable that receives the reports is not
part of the compiled program: it is looked up here, in the receiver installed
by :func:`receiving` around the call, so one compiled program serves every
callback.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import jax
import numpy as np

__all__ = ["Progress", "emit", "receiving"]

# The receiver is process-wide: XLA may run host callbacks on its own threads.
_receiver = [None]


class Progress(NamedTuple):
    """One EM iteration of one restart, as reported to a ``callback``.

    Attributes:
      restart: index of the restart (0 ≤ restart < n_init).
      iteration: iterations completed so far (1 after the first M-step).
      log_likelihood: mean log-likelihood (or log posterior) per sample
        before that iteration's M-step, as in ``FitResult.history``.
    """

    restart: int
    iteration: int
    log_likelihood: float


def emit(active, restart, iteration, log_likelihood) -> None:
    """Host side of the compiled loop's report: one :class:`Progress` per active restart.

    Under ``vmap`` a while loop runs its body for every restart until the
    last one stops; ``active`` marks the restarts that really iterated.
    """
    receiver = _receiver[0]
    if receiver is None:
        return
    columns = [np.asarray(a).reshape(-1) for a in (active, restart, iteration, log_likelihood)]
    for on, r, i, v in zip(*np.broadcast_arrays(*columns)):
        if on:
            receiver(Progress(int(r), int(i), float(v)))


@contextlib.contextmanager
def receiving(callback):
    """Installs ``callback`` as the receiver for the duration of the block.

    Every report is delivered before the block exits (``jax.effects_barrier``).
    """
    previous = _receiver[0]
    _receiver[0] = callback
    try:
        yield
        jax.effects_barrier()
    finally:
        _receiver[0] = previous
