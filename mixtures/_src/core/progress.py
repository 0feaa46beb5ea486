"""Delivery of per-iteration progress from compiled fits to the callable of the call that asked for it.

A compiled EM loop built with reporting on calls :func:`emit` through
``jax.debug.callback`` with a receiver number, a traced argument of the
program: :func:`receiving` gives each call its own number and holds its
callable under it while the call runs. The callable is not part of the
compiled program, so one program serves every callback, and calls running at
the same time in several threads each reach their own callable.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import NamedTuple

import jax
import numpy as np

__all__ = ["Progress", "emit", "raise_pending", "receiving"]

_lock = threading.Lock()
_receivers: dict[int, _Receiver] = {}


class _Receiver:
    """A call's callable and the first exception it raised (which stops further reports)."""

    __slots__ = ("callback", "error")

    def __init__(self, callback):
        self.callback = callback
        self.error: BaseException | None = None


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


def emit(receiver, active, restart, iteration, log_likelihood) -> None:
    """Host side of the compiled loop's report: one :class:`Progress` per active restart to receiver ``receiver``.

    Under ``vmap`` a while loop runs its body for every restart until the
    last one stops; ``active`` marks the restarts that really iterated. An
    exception raised by the callable is kept, not raised here (this runs on
    a thread of the compiled program, which would only see an opaque
    runtime error): :func:`raise_pending` raises it in the caller's thread,
    and no further report reaches that callable.
    """
    with _lock:
        target = _receivers.get(int(np.asarray(receiver).reshape(-1)[0]))
    if target is None or target.error is not None:
        return
    columns = [np.asarray(a).reshape(-1) for a in (active, restart, iteration, log_likelihood)]
    for on, r, i, v in zip(*np.broadcast_arrays(*columns)):
        if on:
            try:
                target.callback(Progress(int(r), int(i), float(v)))
            except BaseException as error:  # noqa: BLE001 - handed to the caller by raise_pending
                target.error = error
                return


def raise_pending(receiver) -> None:
    """Raises, in the calling thread, the exception the callable under ``receiver`` raised, if it did.

    The exception keeps its own type and traceback, so ``fit`` raises what
    the callback raised.
    """
    with _lock:
        target = _receivers.get(int(np.asarray(receiver).reshape(-1)[0]))
    if target is not None and target.error is not None:
        error, target.error = target.error, None
        target.callback = _stopped
        raise error


def _stopped(_):
    """The callable of a call whose callback raised: later reports go nowhere."""


@contextlib.contextmanager
def receiving(callback):
    """Holds ``callback`` under a fresh receiver number for the block; yields the number as an int32 array.

    0 (no receiver) when ``callback`` is None. Every report is delivered
    before the block exits (``jax.effects_barrier``); an exception the
    callable raised is raised then (see :func:`raise_pending`), unless the
    block raised one of its own.

    Example:
      >>> from mixtures._src.core.progress import Progress, emit, receiving
      >>> seen = []
      >>> with receiving(seen.append) as number:
      ...     emit(number, [True, False], [0, 1], [3, 3], [-1.5, -2.0])
      >>> seen
      [Progress(restart=0, iteration=3, log_likelihood=-1.5)]
    """
    if callback is None:
        yield np.int32(0)
        return
    with _lock:
        # The smallest free number: every report of an ended call was delivered before its number was freed.
        number = next(n for n in itertools.count(1) if n not in _receivers)
        _receivers[number] = _Receiver(callback)
    try:
        yield np.int32(number)
        jax.effects_barrier()
        raise_pending(number)
    finally:
        with _lock:
            del _receivers[number]
