"""One process of a two-process ``jax.distributed`` fit on localhost; prints JSON lines.

Run by tests/test_parallel.py as ``python process_worker.py PROCESS_ID PORT CASE``,
twice (process ids 0 and 1), with one CPU device each and gloo as the CPU
collectives. Each process holds its own 500 of the N = 1000 rows (process 0
rows 0..499) and calls ``mx.fit`` on a ``jax.Array`` made from them with
``make_array_from_process_local_data``. Cases:

- ``fit``: prints the fitted mixture, history, n_iter and convergence flag.
- ``bad-rows``: process 1's rows hold a NaN; prints the error each process raised.
- ``host-only``: ``mx.select``, ``mx.fit_stream``, ``fit_online`` and
  ``Mixture.log_prob`` on the split array; prints the error each raised.
- ``dies``: prints ``fitting`` and fits for a long time (``tol=0``); the test
  kills process 1, and process 0 prints the error it raised and how long after
  the kill (the test's clock) it came.

``python process_worker.py single`` fits all N rows in one process, without
``jax.distributed``, and prints the same fields as ``fit``.
"""

from __future__ import annotations

import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_cpu_collectives_implementation", "gloo")

import numpy as np  # noqa: E402

N = 1000
HEARTBEAT_S = 10  # heartbeat_timeout_seconds: a process silent this long is declared dead


def rows() -> tuple[np.ndarray, np.ndarray]:
    """The N rows of every case, and their sample weights."""
    rng = np.random.default_rng(1)
    z = rng.integers(0, 3, N)
    x = np.array([[0.0, 0.0, 0.0], [2.5, 2.5, 0.0], [0.0, 3.0, 2.0]])[z] + rng.normal(size=(N, 3))
    return x, rng.uniform(0.5, 2.0, N)


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def fit_all_rows_here() -> None:
    """The single-process fit of all N rows the ``fit`` case splits (no ``jax.distributed``)."""
    import mixtures as mx

    x, weights = rows()
    result = mx.fit(x, mx.Gaussian("full"), 3, key=jax.random.key(3), sample_weight=weights, n_init=2, tol=1e-8)
    report(-1, result)


def report(process, result) -> None:
    say(
        process=process, event="result", weights=np.asarray(result.mixture.weights).tolist(),
        means=np.asarray(result.mixture.params.means).tolist(), history=np.asarray(result.history).tolist(),
        n_iter=int(result.n_iter), converged=bool(result.converged),
        log_likelihood=float(result.log_likelihood),
    )


def main() -> None:
    if sys.argv[1] == "single":
        return fit_all_rows_here()
    process, port, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process,
        initialization_timeout=60, heartbeat_timeout_seconds=HEARTBEAT_S,
    )
    import mixtures as mx
    from jax.sharding import NamedSharding, PartitionSpec

    assert jax.process_count() == 2 and jax.device_count() == 2, jax.devices()
    x, weights = rows()
    local = x[process * N // 2 : (process + 1) * N // 2].copy()
    if case == "bad-rows" and process == 1:
        local[3, 1] = np.nan
    mesh = jax.make_mesh((2,), ("data",))
    spread = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local)
    kwargs = dict(sample_weight=weights, n_init=2, tol=1e-8)
    if case == "dies":
        kwargs.update(tol=0.0, max_iter=10**6, n_init=1)
    if case == "host-only":
        from mixtures.online import fit_online

        family = mx.Gaussian("full")
        mixture = mx.Mixture(np.full(3, 1 / 3), family.make_params(x[:3], np.stack([np.eye(3)] * 3)), family)
        calls = {
            "select": lambda: mx.select(spread, family, [2, 3], key=jax.random.key(3)),
            "fit_stream": lambda: mx.fit_stream(spread, family, 3, key=jax.random.key(3)),
            "fit_online": lambda: fit_online(spread, family, 3, key=jax.random.key(3)),
            "log_prob": lambda: mixture.log_prob(spread),
        }
        for name, call in calls.items():
            try:
                call()
                say(process=process, event="returned", call=name)
            except Exception as err:  # noqa: BLE001 - reported to the test
                say(process=process, event="raised", call=name, type=type(err).__name__, message=str(err))
        return
    say(process=process, event="fitting")
    try:
        result = mx.fit(spread, mx.Gaussian("full"), 3, key=jax.random.key(3), **kwargs)
        jax.block_until_ready(result)  # fit returns before its program ends: a failure in it surfaces here
    except Exception as err:  # noqa: BLE001 - reported to the test
        say(process=process, event="raised", type=type(err).__name__, message=str(err),
            notes=getattr(err, "__notes__", []), time=time.time())
        return
    report(process, result)  # the result is replicated: every process holds all of it


if __name__ == "__main__":
    main()
