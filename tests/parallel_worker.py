"""Mesh fits against single-device fits, in one process with four CPU devices; prints JSON.

Run by tests/test_parallel.py in a fresh interpreter whose ``XLA_FLAGS``
include ``--xla_force_host_platform_device_count=4`` (JAX fixes the device
count when it starts). Every case fits the same data from the same key on
one device and with the rows split over the four devices, and reports the
largest norm-wise relative difference over the leaves of the two
``FitResult`` s (max |a − b| / max |b| per leaf, NaNs in the same places),
both iteration counts and convergence flags, the devices the mesh result
lives on, and what a ``callback`` received. The first case also reports the
cross-device collectives in the compiled program it ran; a last case stops a
checkpointed mesh fit from its callback and resumes it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import mixtures as mx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402
from mixtures._src.fitting import fit as fitting

N = 1001  # not a multiple of 4


def relative_difference(got, want) -> float:
    worst = 0.0
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        keep = ~np.isnan(b)
        diff = np.max(np.abs(a[keep] - b[keep]), initial=0.0)
        worst = max(worst, 0.0 if diff == 0 else diff / np.max(np.abs(b[keep])))
    return worst


def progress_difference(got, want) -> float:
    """Largest relative difference of the reported log-likelihoods (inf if the (restart, iteration) differ).

    The restarts of one iteration may report in any order (the callback of a vmapped loop runs
    once per restart, in an order XLA chooses), so the reports are compared by (iteration, restart).
    """
    got, want = (sorted(reports, key=lambda p: (p.iteration, p.restart)) for reports in (got, want))
    if [p[:2] for p in got] != [p[:2] for p in want] or not want:
        return float("inf")
    return max(abs(a[2] - b[2]) / abs(b[2]) for a, b in zip(got, want))


def compare(name, x, family, k, mesh, single_x=None, callback=False, **kwargs):
    got, want = [], []
    single = mx.fit(
        x if single_x is None else single_x, family, k, key=jax.random.key(3),
        callback=want.append if callback else None, **kwargs,
    )
    parallel = mx.fit(x, family, k, key=jax.random.key(3), mesh=mesh, callback=got.append if callback else None, **kwargs)
    return {
        "name": name,
        "relative_difference": relative_difference(parallel, single),
        "n_iter": [int(parallel.n_iter), int(single.n_iter)],
        "converged": [bool(parallel.converged), bool(single.converged)],
        "devices": len(parallel.mixture.weights.sharding.device_set),
        "progress_difference": progress_difference(got, want) if callback else None,
        "n_progress": [len(got), len(want)],
    }


def resumed_on_mesh(x, mesh, path) -> dict:
    """A mesh fit stopped by its callback at iteration 7, then resumed from its checkpoint, against one run."""

    class Stop(Exception):
        pass

    def stop(p):
        if p.iteration == 7:
            raise Stop

    args = dict(key=jax.random.key(3), mesh=mesh, n_init=2, max_iter=15, tol=0.0)
    try:
        mx.fit(x, mx.Gaussian("full"), 3, callback=stop, checkpoint=path, checkpoint_every=5, **args)
    except Stop:
        pass
    with np.load(path) as saved:
        saved_at = int(saved["first"])
    resumed = mx.fit(x, mx.Gaussian("full"), 3, checkpoint=path, checkpoint_every=5, **args)
    whole = mx.fit(x, mx.Gaussian("full"), 3, **args)
    return {"saved_at": saved_at, "difference": relative_difference(resumed, whole)}


def recording_mesh_programs():
    """Replaces fit's compiled mesh segment program by a wrapper that records its arguments; returns the record."""
    calls = []
    original = fitting._advance_on_mesh

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    fitting._advance_on_mesh = recording
    return calls, original


def collectives(program, call) -> dict:
    """Cross-device collectives in the compiled program (from JAX's cache: the one that ran)."""
    args, kwargs = call
    text = program.lower(*args, **kwargs).compile().as_text()
    return {op: len(re.findall(rf"\b{op}(-start)?\(", text)) for op in ("all-reduce", "all-gather")}


def main():
    assert jax.device_count() == 4, jax.devices()
    mesh = jax.make_mesh((4,), ("data",))
    rng = np.random.default_rng(1)
    z = rng.integers(0, 3, N)
    x = np.array([[0.0, 0.0, 0.0], [2.5, 2.5, 0.0], [0.0, 3.0, 2.0]])[z] + rng.normal(size=(N, 3))
    counts = rng.poisson(np.array([[1.0, 6.0], [8.0, 2.0], [3.0, 3.0]])[z]).astype(float)
    codes = np.where(rng.random((N, 4)) < 0.6, z[:, None], rng.integers(0, 3, (N, 4))).astype(float)
    labels = np.where(np.arange(N) < 60, z, -1)  # the first 60 rows labelled
    holes = np.where(rng.random((N, 3)) < 0.25, np.nan, x)  # missing entries
    holes[np.all(np.isnan(holes), axis=1), 0] = x[np.all(np.isnan(holes), axis=1), 0]
    grid = jax.make_mesh((2, 2), ("hosts", "chips"))  # axes of type Explicit; rows over both
    presharded = jax.device_put(codes[:1000], NamedSharding(grid, PartitionSpec(("hosts", "chips"))))
    student = mx.StudentT(n_steps=5)
    warm = mx.Mixture(np.full(3, 1 / 3), student.make_params(x[:3], np.ones((3, 3))), student)

    calls, program = recording_mesh_programs()
    cases = [
        compare(
            "gaussian-weights-restarts", x, mx.Gaussian("full"), 3, mesh, callback=True,
            sample_weight=rng.uniform(0.0, 3.0, N), n_init=3, tol=1e-6,
        ),
    ]
    found = collectives(program, calls[0])
    cases += [
        compare(
            "categorical-presharded-labels-prior", presharded, mx.Categorical((3, 3, 3, 3)), 3, None,
            single_x=codes[:1000], labels=labels[:1000], prior="default", init="random_from_data",
        ),
        compare(
            "poisson-hard-fixed-weights-labels", counts, mx.Poisson(), 3, mesh, assignment="hard", update_weights=False,
            init="random", labels=labels,
        ),
        compare("student-t-warm-start", x, student, 3, mesh, max_iter=4, init=warm),
        compare(
            "gaussian-missing-weights", holes, mx.Gaussian("full"), 3, mesh, missing="marginalize",
            sample_weight=rng.uniform(0.0, 3.0, N), tol=1e-6,
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        resumed = resumed_on_mesh(x, mesh, os.path.join(tmp, "fit.ckpt"))
    report = {"xla_flags": os.environ.get("XLA_FLAGS", ""), "collectives": found, "cases": cases, "resumed": resumed}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
