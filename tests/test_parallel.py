"""Data-parallel EM (``mx.fit(..., mesh=...)``): equal to the single-device fit, and checked on the host.

The comparisons need several devices, whose number JAX fixes when it starts:
they run in one fresh interpreter with four CPU devices
(tests/parallel_worker.py), in one test so that pytest-xdist starts it once.
The multi-process tests start two processes joined by ``jax.distributed`` on
localhost (tests/process_worker.py, gloo CPU collectives): their fit against
one process's, rows refused in one process, and a process killed mid-fit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import mixtures as mx
from tests.helpers import recording_compilations

WORKER = Path(__file__).with_name("parallel_worker.py")
CASES = {
    "gaussian-weights-restarts",  # full covariance, N = 1001, sample_weight, n_init=3, callback
    "categorical-presharded-labels-prior",  # x split by its own NamedSharding over a 2×2 mesh
    "poisson-hard-fixed-weights-labels",  # init="random", assignment="hard", update_weights=False, labels on N = 1001 rows
    "student-t-warm-start",  # a GradientFamily (Adam steps over the data) from a given mixture
    "gaussian-missing-weights",  # missing="marginalize": rows with NaN entries (sorted by their count), sample_weight
}


@pytest.mark.slow
def test_mesh_fits_equal_single_device_fits_and_sum_across_devices():
    env = {k: v for k, v in os.environ.items() if k != "MIXTURES_XLA_CPU_FUSION"}
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    out = subprocess.run(
        [sys.executable, str(WORKER)], capture_output=True, text=True, env=env, timeout=300,
        cwd=WORKER.parent.parent,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])

    # Importing mixtures left the flags as the worker was started with.
    assert report["xla_flags"] == env["XLA_FLAGS"]
    # The program that ran adds the devices' sums: it fails if the fit silently ran on one device.
    assert report["collectives"]["all-reduce"] >= 1, report["collectives"]

    cases = {case["name"]: case for case in report["cases"]}
    assert set(cases) == CASES
    failures = []
    for name, case in cases.items():
        if not case["relative_difference"] <= 1e-6:
            failures.append(f"{name}: relative difference {case['relative_difference']:.3g}")
        if case["n_iter"][0] != case["n_iter"][1] or case["converged"][0] != case["converged"][1]:
            failures.append(f"{name}: n_iter {case['n_iter']}, converged {case['converged']} (mesh, single)")
        if case["devices"] != 4:
            failures.append(f"{name}: the result lives on {case['devices']} devices")
    assert not failures, failures
    # The callback saw every iteration of every restart once (not once per device), with the same values.
    restarts = cases["gaussian-weights-restarts"]
    assert restarts["n_progress"][0] == restarts["n_progress"][1] > 3
    assert restarts["progress_difference"] <= 1e-6
    # A mesh fit stopped at iteration 7 resumes from its checkpoint (iteration 5) to the same bits.
    assert report["resumed"] == {"saved_at": 5, "difference": 0.0}


@pytest.fixture
def no_compilation():
    """Fails the test if XLA compiles anything after it calls ``clear()`` on the list."""
    with recording_compilations() as events:
        yield events
    assert not events, "compiled before rejecting the input"


X = np.random.default_rng(0).normal(size=(20, 2))


def _one_device(spec, values=X):
    mesh = jax.make_mesh((1,), ("data",))
    return jax.device_put(values, NamedSharding(mesh, spec))


def test_a_mesh_of_the_wrong_type_is_a_type_error(no_compilation):
    key = jax.random.key(0)
    no_compilation.clear()
    with pytest.raises(TypeError, match=r"`mesh` must be a jax.sharding.Mesh .*received 'data'"):
        mx.fit(X, mx.Gaussian(), 2, key=key, mesh="data")
    abstract = jax.sharding.AbstractMesh((1,), ("data",))
    with pytest.raises(TypeError, match=r"`mesh` must be a jax.sharding.Mesh"):
        mx.fit(X, mx.Gaussian(), 2, key=key, mesh=abstract)


def test_data_split_along_its_features_is_refused(no_compilation):
    x, key = _one_device(PartitionSpec(None, "data")), jax.random.key(0)
    no_compilation.clear()
    with pytest.raises(ValueError, match=r"`x` must be split over devices along its rows only; .*\(None, 'data'\)"):
        mx.fit(x, mx.Gaussian(), 2, key=key)
    with pytest.raises(ValueError, match=r"`x` must be split over devices along its rows only"):
        mx.fit(x, mx.Gaussian(), 2, key=key, mesh=jax.make_mesh((1,), ("data",)))


def test_split_data_is_validated_block_by_block(no_compilation):
    bad = X.copy()
    bad[3, 1] = np.nan
    counts = np.abs(np.round(X * 3))
    counts[7, 0] = -2.0
    bad, counts, key = _one_device(PartitionSpec("data"), bad), _one_device(PartitionSpec("data"), counts), jax.random.key(0)
    no_compilation.clear()
    with pytest.raises(ValueError, match=r"`x\[0:20\]` must contain only finite values in float64; received nan at row 3, column 1"):
        mx.fit(bad, mx.Gaussian(), 2, key=key)
    with pytest.raises(ValueError, match=r"in the block x\[0:20\] on .*column 0 of `x` must hold non-negative integer counts; row 7 has -2.0"):
        mx.fit(counts, mx.Poisson(), 2, key=key)


def test_the_other_arguments_are_still_checked_first(no_compilation):
    x, key = _one_device(PartitionSpec("data")), jax.random.key(0)
    no_compilation.clear()
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(20,\)"):
        mx.fit(x, mx.Gaussian(), 2, key=key, sample_weight=np.ones(19))
    with pytest.raises(ValueError, match=r"`n_components` must be at most the number of samples N \(20\)"):
        mx.fit(X, mx.Gaussian(), 21, key=key, mesh=jax.make_mesh((1,), ("data",)))



# Several processes (jax.distributed on localhost, gloo CPU collectives), one CPU device each.
PROCESS_WORKER = Path(__file__).with_name("process_worker.py")
HANG_S = 180  # generous: a bound that only a hang exceeds (a run takes 5-25 s on a loaded machine)
DEAD_S = 60  # generous bound on how long after a process dies the other raises


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, tmp_path, name):
    """Starts the process worker with ``args``; its stdout and stderr go to files in ``tmp_path``."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags)  # one CPU device per process
    root = str(PROCESS_WORKER.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else root
    out, err = (open(tmp_path / f"{name}.{s}", "w") for s in ("out", "err"))
    proc = subprocess.Popen(
        [sys.executable, str(PROCESS_WORKER), *map(str, args)], stdout=out, stderr=err, env=env, cwd=root,
    )
    proc.files = (tmp_path / f"{name}.out", tmp_path / f"{name}.err")
    return proc


def _events(proc) -> list[dict]:
    lines = proc.files[0].read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _finish(procs, timeout=HANG_S) -> list[list[dict]]:
    """Waits for every process (killing all on a hang) and returns each one's JSON lines."""
    try:
        for proc in procs:
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"hung: a process ran past {timeout} s; stderr: {procs[0].files[1].read_text()[-2000:]}")
    return [_events(proc) for proc in procs]


def _two_processes(case, tmp_path):
    port = _free_port()
    return [_start([i, port, case], tmp_path, f"process{i}") for i in range(2)]


@pytest.mark.slow
def test_two_processes_fit_what_one_process_fits_on_all_the_rows(tmp_path):
    procs = _two_processes("fit", tmp_path) + [_start(["single"], tmp_path, "single")]
    events = _finish(procs)
    for proc in procs:
        assert proc.returncode == 0, proc.files[1].read_text()[-4000:]
    got = [e[-1] for e in events]
    assert [g["event"] for g in got] == ["result"] * 3, got
    one, two, single = got
    # Every process holds the whole, replicated result.
    assert one == {**two, "process": 0}
    assert one["n_iter"] == single["n_iter"] and one["converged"] == single["converged"]
    # Equal to the single-process fit up to the order of the sums (float64: documented about 1e-15 relative).
    for field in ("weights", "means", "history", "log_likelihood"):
        a, b = np.asarray(one[field], float), np.asarray(single[field], float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), field  # history: NaN past the last iteration
        a, b = a[~np.isnan(b)], b[~np.isnan(b)]
        assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b)), (field, a, b)


@pytest.mark.slow
def test_rows_refused_in_one_process_make_every_process_raise(tmp_path):
    events = _finish(_two_processes("bad-rows", tmp_path))
    first, second = (e[-1] for e in events)
    assert first["event"] == second["event"] == "raised", events
    # The process whose rows are bad raises its own error, with a note that every process raises.
    assert second["type"] == "ValueError"
    assert re.match(r"`x\[500:1000\]` must contain only finite values in float64; received nan at row 3", second["message"])
    assert "In process 1 of 2: every process of this fit raises" in second["notes"][0]
    # The other one raises too (it used to wait forever in the compiled program), naming process 1 and why.
    assert first["type"] == "ValueError"
    assert re.match(r"The fit was refused in process\(es\) 1 of 2 \(this is process 0", first["message"])
    assert "process 1: ValueError: `x[500:1000]` must contain only finite values" in first["message"]


@pytest.mark.slow
def test_functions_that_read_rows_on_the_host_refuse_split_data_in_every_process(tmp_path):
    procs = _two_processes("host-only", tmp_path)
    events = _finish(procs)
    for process, got in enumerate(events):
        assert [(e["call"], e["event"], e["type"]) for e in got] == [
            (call, "raised", "ValueError") for call in ("select", "fit_stream", "fit_online", "log_prob")
        ], got
        for e in got:
            assert "is a jax.Array split over 2 processes" in e["message"] and "mx.fit fits such arrays" in e["message"]


def test_a_process_that_dies_makes_the_other_fail_instead_of_waiting(tmp_path):
    procs = _two_processes("dies", tmp_path)
    deadline = time.monotonic() + HANG_S
    while not all(any(e["event"] == "fitting" for e in _events(p)) for p in procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [_events(p) for p in procs]
        time.sleep(0.2)
    time.sleep(3.0)  # both inside fit: compiling, or in the EM loop's collectives
    assert procs[0].poll() is None, _events(procs[0])
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    events = _finish(procs)
    # The survivor's collective fails as the dead process's sockets close: its fit raises (when its
    # result is awaited) instead of waiting, well within the bound (measured: under 10 s here).
    last = events[0][-1]
    assert last["event"] == "raised" and last["type"] == "JaxRuntimeError", events[0]
    assert last["time"] - killed < DEAD_S, last
    assert "Gloo" in last["message"], last
    # It then exits with an error (jax.distributed's shutdown barrier fails without the dead process).
    assert procs[0].returncode != 0
    assert procs[1].returncode == -signal.SIGKILL
