"""Agreement between the processes of a multi-process fit before its compiled program.

With ``jax.distributed``, every process runs ``fit``'s host-side checks on
its own rows, then the same compiled program, whose collectives wait for
every process. A process whose checks raise never reaches that program, so
the others would wait in it forever. :func:`agreed_checks` closes that gap:
the processes exchange the outcome of their checks (one small
``multihost_utils.process_allgather``, after the checks, before anything
of the fit is compiled) and either all go on or all raise.

A process that dies during a collective (the exchange or the EM loop)
closes its sockets: the others' collective fails at once with a
``JaxRuntimeError`` ("Connection closed by peer"). A process that stops
without closing them (its machine lost) is declared dead by the
coordination service after ``heartbeat_timeout_seconds`` of
``jax.distributed.initialize`` (100 s by default), which then stops the
others.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np

from mixtures._src.core import checks

__all__ = ["agreed_checks", "spans_processes"]

MESSAGE_BYTES = 2000  # of each process's error message shared with the others (UTF-8, cut there)


def spans_processes(x) -> bool:
    """Whether ``x`` is a concrete ``jax.Array`` part of whose rows other processes hold."""
    return isinstance(x, jax.Array) and not checks.is_traced(x) and not x.is_fully_addressable


def _exchange(failure: BaseException | None) -> list[tuple[int, str]]:
    """Every process's outcome, as (process index, message) for the processes that failed (a collective)."""
    from jax.experimental import multihost_utils

    record = np.zeros(1 + MESSAGE_BYTES, np.uint8)
    if failure is not None:
        text = f"{type(failure).__name__}: {failure}".encode("utf-8", "replace")[:MESSAGE_BYTES]
        record[0] = 1
        record[1 : 1 + len(text)] = np.frombuffer(text, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(record))
    return [
        (index, bytes(row[1:]).rstrip(b"\0").decode("utf-8", "replace"))
        for index, row in enumerate(gathered)
        if row[0]
    ]


@contextlib.contextmanager
def agreed_checks(x):
    """Runs the checks in its block; when ``x`` spans processes, all of them raise if any one's checks did.

    With ``x`` held by one process this does nothing. Otherwise every
    process must enter and leave the block in the same call (as every
    process calls ``fit`` with the same arguments): on leaving it, the
    processes exchange whether their checks raised. A process whose checks
    raised re-raises its own exception, with a note; the others raise a
    ``ValueError`` naming the processes that failed and their messages
    (a ``RuntimeError`` when no failure was a ``ValueError`` or
    ``TypeError``). Nothing is compiled for the fit before that.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.processes import agreed_checks
      >>> with agreed_checks(np.zeros((3, 2))):  # one process: the block as it is
      ...     pass
    """
    if not spans_processes(x):
        yield
        return
    failure = None
    try:
        yield
    except Exception as err:  # noqa: BLE001 - any failure must reach the other processes
        failure = err
    failed = _exchange(failure)
    n = jax.process_count()
    if failure is not None:
        others = [index for index, _ in failed if index != jax.process_index()]
        also = f"; processes {others} failed too" if others else ""
        failure.add_note(
            f"In process {jax.process_index()} of {n}: every process of this fit raises, none starts it{also}."
        )
        raise failure
    if failed:
        names = ", ".join(str(index) for index, _ in failed)
        details = "; ".join(f"process {index}: {message}" for index, message in failed)
        kind = ValueError if any(m.startswith(("ValueError", "TypeError")) for _, m in failed) else RuntimeError
        raise kind(
            f"The fit was refused in process(es) {names} of {n} (this is process {jax.process_index()}, whose "
            f"arguments passed its checks), so no process starts it. {details}"
        )
