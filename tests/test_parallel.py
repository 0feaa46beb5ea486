"""Data-parallel EM (``mx.fit(..., mesh=...)``): equal to the single-device fit, and checked on the host.

The comparisons need several devices, whose number JAX fixes when it starts:
they run in one fresh interpreter with four CPU devices
(tests/parallel_worker.py), in one test so that pytest-xdist starts it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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

