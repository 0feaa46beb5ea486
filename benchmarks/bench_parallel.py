"""Data-parallel EM (``mx.fit(..., mesh=...)``) on 1, 2, 4, ... CPU devices against the single-device path.

For one Gaussian full-covariance case (default N = 2·10⁵, D = 16, K = 16,
float32) it runs, each in its own subprocess:

- ``single``: ``mx.fit`` without a mesh, on a process with one device;
- ``mesh-P`` for every P in ``--devices``: ``mx.fit(..., mesh=mesh)`` with the
  rows split over P devices, in a process started with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=P``. ``mesh-1`` measures
  the overhead of the mesh path itself (shard_map, psum, padding) on one
  device.

Every run starts from the same mixture (a warm start: K rows of the data as
means, the data's covariance), so all of them compute the same iterations.
Seconds per EM iteration come from two timed fits of ``--iters + 1`` and 1
iterations with the tolerance at zero, so set-up and the final E-step cancel
out (the fastest of ``--repeats`` each). Also reported: compile seconds
(first call minus a later one), peak resident memory of the subprocess
(VmHWM), the mean log-likelihood after the iterations and its
relative difference to ``single``'s, the speed-up over ``single``, and the
time of the initialisation from a key (``init="kmeans++"``, which gathers
the rows onto every device: a one-iteration fit from a key minus a
one-iteration warm-started fit).

Forced CPU devices share the machine's cores: on a 2-core machine nothing
beyond two devices can run in parallel, so a speed-up past 2 is not
expected; the table reports what happens. Every child runs with XLA:CPU's YNN
fusion off (``MIXTURES_XLA_CPU_FUSION=off`` unless the caller set that
variable; ``XLA_FLAGS`` naming the setting wins); the flags every child ran
with are printed.

Usage:
  python benchmarks/bench_parallel.py                          # 2·10⁵ × 16, K = 16, devices 1, 2, 4
  python benchmarks/bench_parallel.py --n 1000000 --devices 1,2,4,8 --out parallel.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_em import peak_rss_bytes  # noqa: E402

GIB = 2.0**30
DEVICE_FLAG = "--xla_force_host_platform_device_count"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    result.log_likelihood.block_until_ready()
    return time.perf_counter() - start, result


# ---------------------------------------------------------------------------
# Child: one implementation in its own process


def child(spec):
    import jax
    import numpy as np

    if spec["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    import mixtures as mx

    x = np.load(spec["data"]).astype(spec["dtype"])
    n_devices = jax.device_count()
    mesh = None if spec["impl"] == "single" else jax.make_mesh((n_devices,), ("data",))
    family = mx.Gaussian("full")
    rng = np.random.default_rng(spec["seed"])
    k = spec["k"]
    means = x[rng.choice(x.shape[0], k, replace=False)].astype(np.float64)
    covariances = np.broadcast_to(np.cov(x.T.astype(np.float64)), (k, x.shape[1], x.shape[1]))
    start = mx.Mixture(np.full(k, 1.0 / k), family.make_params(means, covariances), family)
    out = {"devices": n_devices, "xla_flags": os.environ.get("XLA_FLAGS", ""), "rss_after_load_gib": peak_rss_bytes() / GIB}

    def warm(n_iter):
        return timed(lambda: mx.fit(x, family, k, key=None, init=start, max_iter=n_iter, tol=0.0, mesh=mesh))

    first, _ = warm(1)
    warm(spec["iters"] + 1)  # compiles the longer loop's program (max_iter is static)
    one = min(warm(1)[0] for _ in range(spec["repeats"]))
    out["compile_s"] = max(first - one, 0.0)
    runs = [warm(spec["iters"] + 1) for _ in range(spec["repeats"])]
    many, result = min(runs, key=lambda r: r[0])
    out["per_iter_s"] = (many - one) / spec["iters"] if many > one else None
    out["log_likelihood"] = float(result.log_likelihood)

    def from_key():
        return timed(lambda: mx.fit(x, family, k, key=jax.random.key(0), max_iter=1, tol=0.0, mesh=mesh))

    from_key()
    out["init_s"] = max(min(from_key()[0] for _ in range(spec["repeats"])) - one, 0.0)
    out["peak_rss_gib"] = peak_rss_bytes() / GIB
    return out


# ---------------------------------------------------------------------------
# Parent


def run_child(spec, n_devices, timeout):
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG + "=")]
    env["XLA_FLAGS"] = " ".join(flags + [f"{DEVICE_FLAG}={n_devices}"])
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    if done.returncode != 0:
        return {"status": "failed", "stderr": done.stderr[-2000:]}
    return {"status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def make_data(n, d, k, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    z = rng.integers(0, k, n)
    return centres[z] + rng.normal(size=(n, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d))


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="rows N (default 200000)")
    parser.add_argument("--d", type=int, default=16, help="features D (default 16)")
    parser.add_argument("--k", type=int, default=16, help="components K (default 16)")
    parser.add_argument("--devices", default="1,2,4", help="comma-separated device counts for the mesh runs (default 1,2,4)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--iters", type=int, default=10, help="EM iterations in the timed fit (default 10)")
    parser.add_argument("--repeats", type=int, default=2, help="timed fits per run; the fastest counts (default 2)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a subprocess is stopped")
    parser.add_argument("--out", default="bench_parallel.json", help="the JSON file (default bench_parallel.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Every child opts in to the faster XLA:CPU setting unless the caller chose (docs/performance.md).
    os.environ.setdefault("MIXTURES_XLA_CPU_FUSION", "off")
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    try:
        devices = [int(p) for p in args.devices.split(",")]
    except ValueError:
        parser.error(f"--devices: expected comma-separated integers; received {args.devices!r}")
    if any(p < 1 for p in devices) or min(args.n, args.d, args.k, args.iters, args.repeats) < 1 or args.k > args.n:
        parser.error("--n, --d, --k, --iters, --repeats and every device count must be positive, and K ≤ N")

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "x.npy")
        np.save(data, make_data(args.n, args.d, args.k, seed=0))
        base = {"data": data, "k": args.k, "dtype": args.dtype, "iters": args.iters, "repeats": args.repeats, "seed": 1}
        runs = {"single": run_child({**base, "impl": "single"}, 1, args.timeout)}
        for p in devices:
            runs[f"mesh-{p}"] = run_child({**base, "impl": "mesh"}, p, args.timeout)

    reference = runs["single"]
    print(f"Gaussian full, N={args.n}, D={args.d}, K={args.k}, {args.dtype}, {os.cpu_count()} CPU cores, "
          f"{args.iters} timed iterations")
    print(f"XLA_FLAGS of the single-device child: {reference.get('xla_flags', '?')!r}")
    header = f"{'run':<9} {'devices':>7} {'s/iter':>9} {'speed-up':>8} {'compile s':>9} {'init s':>7} {'peak GiB':>8} {'rel. diff ll':>12}"
    print(header)
    print("-" * len(header))
    for name, r in runs.items():
        if r["status"] != "ok":
            print(f"{name:<9} {r['status']}: {r.get('stderr', '')[-300:]}")
            continue
        speedup = None
        if reference.get("per_iter_s") and r.get("per_iter_s"):
            speedup = reference["per_iter_s"] / r["per_iter_s"]
        rel = None
        if reference["status"] == "ok":
            rel = abs(r["log_likelihood"] - reference["log_likelihood"]) / abs(reference["log_likelihood"])
        r["speedup"], r["relative_difference"] = speedup, rel
        print(f"{name:<9} {r['devices']:>7} {fmt(r['per_iter_s'], '9.4f')} {fmt(speedup, '8.2f')} "
              f"{r['compile_s']:>9.1f} {r['init_s']:>7.2f} {r['peak_rss_gib']:>8.2f} {fmt(rel, '12.1e')}")
    result = {
        "case": {"n": args.n, "d": args.d, "k": args.k, "dtype": args.dtype, "iters": args.iters, "repeats": args.repeats},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": runs,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
