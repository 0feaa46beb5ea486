"""Exact EM over a file read in batches (``mx.fit_stream``) against the in-memory fit, as the file grows.

For each size N the script writes a float32 ``.npy`` file of N rows drawn
from a known Gaussian mixture (written block by block, so the parent never
holds it), then runs, each in its own subprocess so that its peak resident
memory (VmHWM) is its own:

- **stream**: ``mx.fit_stream(path, ...)`` from a fixed warm start, with
  ``--iters`` iterations and the tolerance at zero. The compiled programs are
  built first by a fit on one batch of the same shape, so the timed fit
  measures reading and EM only. Reported: peak memory, seconds per pass over
  the file (the fit makes ``iters + 2`` passes: the validating scan, one per
  iteration, and the final log-likelihood) and the read rate.
- **in-memory**: ``np.load(path)`` and ``mx.fit(x, ...)`` from the same start
  and iterations (its seconds per iteration from a second, compiled call).

Both fits must agree: the relative difference of their final mean
log-likelihoods is printed (float32; the two sum the rows in different
orders). The stream's peak memory should stay flat as N grows while the
in-memory fit's grows with the data.

Usage:
  python benchmarks/bench_stream.py                                  # N = 2.5e5, 1e6, 4e6; D = 8, K = 8
  python benchmarks/bench_stream.py --sizes 1000000,8000000 --out stream.json
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

MIB = 2.0**20


def write_file(path, n, d, k, seed=0, block=1 << 18):
    """N rows of a K-cluster mixture in D dimensions as a float32 .npy file, written in blocks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(k, d))
    factors = rng.normal(0.0, 0.3, size=(k, d, d)) + np.eye(d)
    with open(path, "wb") as f:  # plain writes: a memory map would grow this process's resident memory
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (n, d)}
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, block):
            rows = min(block, n - start)
            z = rng.choice(k, size=rows)
            noise = rng.standard_normal((rows, d))
            (means[z] + np.einsum("nd,nde->ne", noise, factors[z])).astype(np.float32).tofile(f)
    return means


def start_mixture(means, d):
    """The shared warm start: the true means moved by N(0, 0.5²), unit covariances, equal weights."""
    import numpy as np

    import mixtures as mx

    rng = np.random.default_rng(1)
    k = means.shape[0]
    family = mx.Gaussian("full")
    shifted = (means + rng.normal(0.0, 0.5, size=means.shape)).astype(np.float32)
    return mx.Mixture(np.full(k, 1.0 / k, np.float32), family.make_params(shifted, np.stack([np.eye(d, dtype=np.float32)] * k)), family)


def child(spec):
    import numpy as np

    import mixtures as mx

    means = np.asarray(spec["means"])
    d = means.shape[1]
    k = means.shape[0]
    start = start_mixture(means, d)
    options = dict(key=None, init=start, max_iter=spec["iters"], tol=0.0)
    if spec["mode"] == "stream":
        first = np.load(spec["path"], mmap_mode="r")[: spec["batch_size"]]
        mx.fit_stream(np.array(first), mx.Gaussian("full"), k, batch_size=spec["batch_size"], **options)  # compiles
        t0 = time.perf_counter()
        result = mx.fit_stream(spec["path"], mx.Gaussian("full"), k, batch_size=spec["batch_size"], **options)
        ll = float(result.log_likelihood)
        seconds = time.perf_counter() - t0
        passes = spec["iters"] + 2
        out = {"seconds": seconds, "passes": passes, "seconds_per_pass": seconds / passes}
    else:
        x = np.load(spec["path"])
        t0 = time.perf_counter()
        mx.fit(x, mx.Gaussian("full"), k, **options).log_likelihood.block_until_ready()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = mx.fit(x, mx.Gaussian("full"), k, **options)
        ll = float(result.log_likelihood)
        seconds = time.perf_counter() - t0
        out = {"seconds": seconds, "seconds_per_iter": seconds / (spec["iters"] + 1), "compile_seconds": first - seconds}
    out.update(log_likelihood=ll, peak_bytes=peak_rss_bytes())
    print(json.dumps(out))


def run_child_of(script, spec, timeout):
    """Runs ``script --child SPEC`` in a subprocess; returns its last stdout line's JSON with a status."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(script), "--child", json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        return {"status": "failed", "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["status"] = "ok"
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,1000000,4000000", help="comma-separated row counts N")
    parser.add_argument("--features", type=int, default=8, help="D")
    parser.add_argument("--components", type=int, default=8, help="K")
    parser.add_argument("--batch-size", type=int, default=65536, help="rows per batch of the stream")
    parser.add_argument("--iters", type=int, default=5, help="EM iterations of each fit")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--dir", default=None, help="where to write the data files (default: a temporary directory)")
    parser.add_argument("--out", default="bench_stream.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Every child opts in to the faster XLA:CPU setting unless the caller chose (docs/performance.md).
    os.environ.setdefault("MIXTURES_XLA_CPU_FUSION", "off")
    if args.child:
        return child(json.loads(args.child))

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    d, k = args.features, args.components
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_stream_") as folder:
        for n in sizes:
            path = os.path.join(folder, f"x_{n}.npy")
            means = write_file(path, n, d, k)
            spec = {"path": path, "means": means.tolist(), "iters": args.iters, "batch_size": args.batch_size}
            row = {"n": n, "file_bytes": os.path.getsize(path)}
            for mode in ("stream", "in-memory"):
                row[mode] = run_child_of(__file__, {**spec, "mode": mode}, args.timeout)
            os.remove(path)
            rows.append(row)
            print_row(row)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "features": d, "components": k, "batch_size": args.batch_size, "iters": args.iters, "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


_HEADER_PRINTED = []


def print_row(row):
    if not _HEADER_PRINTED:
        print(f"{'N':>10} {'file MiB':>9} | {'stream peak MiB':>15} {'s/pass':>7} {'MB/s':>6} | "
              f"{'in-memory peak MiB':>18} {'s/iter':>7} | {'Δll':>8}")
        _HEADER_PRINTED.append(True)
    s, m = row["stream"], row["in-memory"]
    if s["status"] != "ok" or m["status"] != "ok":
        print(f"{row['n']:>10} failed: stream {s.get('error', 'ok')}; in-memory {m.get('error', 'ok')}")
        return
    rate = row["file_bytes"] / s["seconds_per_pass"] / 1e6
    diff = abs(s["log_likelihood"] - m["log_likelihood"]) / abs(m["log_likelihood"])
    row["relative_difference"] = diff
    print(f"{row['n']:>10} {row['file_bytes'] / MIB:>9.0f} | {s['peak_bytes'] / MIB:>15.0f} {s['seconds_per_pass']:>7.3f} "
          f"{rate:>6.0f} | {m['peak_bytes'] / MIB:>18.0f} {m['seconds_per_iter']:>7.3f} | {diff:>8.1e}")


if __name__ == "__main__":
    main()
