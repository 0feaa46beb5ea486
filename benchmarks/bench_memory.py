"""Peak memory of the in-memory fit on 10⁷ rows: N = 10⁷, D = 8, K = 32, float32.

The N×K responsibility matrix alone would take 1.2 GiB in float32; the
library's E-step and accumulation run over row blocks and never form it.
The target: peak resident memory below the data's size plus 1 GiB.

The script writes the data once as a float32 ``.npy`` file (305 MiB at the
default size) and runs each fit in its own subprocess, so that each peak
(VmHWM) is its own:

- **mixtures (NumPy input)**: ``x = np.load(path)``, then ``mx.fit(x, ...)``.
  The process then holds the caller's array and the library's device copy
  of it.
- **mixtures (jax.Array input)**: the array is moved to the device first and
  the NumPy copy dropped, so the process holds the data once.
- **mixtures fit_stream**: ``mx.fit_stream(path, ...)``, which never holds
  the data at all.
- **scikit-learn** (``--sklearn``, on by default when installed):
  ``GaussianMixture`` on the same float32 array, from the same start.

Every fit starts from the same warm start (the true means moved by noise),
runs ``--iters`` iterations with the tolerance at zero (scikit-learn
``--sklearn-iters``, default 1: its peak is reached in the first, and each
takes minutes at this size), and is timed after a first compiling call (for
scikit-learn, once; its log-likelihood is then not comparable with the others'). Reported per fit: peak memory,
peak minus the data, seconds per iteration and the final mean
log-likelihood (which must agree across fits).

Usage:
  python benchmarks/bench_memory.py                         # 10⁷ × 8, K = 32: several minutes
  python benchmarks/bench_memory.py --rows 1000000 --no-sklearn --out memory.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_em import peak_rss_bytes  # noqa: E402
from bench_stream import run_child_of, start_mixture, write_file  # noqa: E402

GIB = 2.0**30
MODES = ("mixtures-numpy", "mixtures-device", "mixtures-stream", "sklearn")


def child(spec):
    import numpy as np

    means = np.asarray(spec["means"])
    k, d = means.shape
    mode = spec["mode"]
    iters = spec["sklearn_iters"] if mode == "sklearn" else spec["iters"]
    if mode == "sklearn":
        from sklearn.mixture import GaussianMixture

        start = start_mixture(means, d)
        x = np.load(spec["path"])
        model = GaussianMixture(
            k, covariance_type="full", max_iter=iters, tol=0.0, reg_covar=1e-6,
            weights_init=np.asarray(start.weights, np.float64), means_init=np.asarray(start.params.means, np.float64),
            precisions_init=np.asarray(start.params.precisions, np.float64),
        )
        t0 = time.perf_counter()
        model.fit(x)
        seconds = time.perf_counter() - t0
        out = {"seconds_per_iter": seconds / iters, "log_likelihood": float(model.score(x))}
    else:
        import jax

        import mixtures as mx

        start = start_mixture(means, d)
        options = dict(key=None, init=start, max_iter=iters, tol=0.0)
        family = mx.Gaussian("full")
        if mode == "mixtures-stream":
            def run():
                return mx.fit_stream(spec["path"], family, k, batch_size=spec["batch_size"], **options)
            runs = iters + 2  # the scan, the iterations, the final log-likelihood
        else:
            x = np.load(spec["path"])
            if mode == "mixtures-device":
                x = jax.device_put(x)
                x.block_until_ready()

            def run():
                return mx.fit(x, family, k, **options)
            runs = iters + 1  # the iterations and the final log-likelihood
        t0 = time.perf_counter()
        run().log_likelihood.block_until_ready()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ll = float(run().log_likelihood)
        seconds = time.perf_counter() - t0
        out = {"seconds_per_iter": seconds / runs, "compile_seconds": max(0.0, first - seconds), "log_likelihood": ll}
    out["peak_bytes"] = peak_rss_bytes()
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=1e7, help="N")
    parser.add_argument("--features", type=int, default=8, help="D")
    parser.add_argument("--components", type=int, default=32, help="K")
    parser.add_argument("--iters", type=int, default=5, help="EM iterations per fit")
    parser.add_argument("--sklearn-iters", type=int, default=1,
                        help="scikit-learn's iterations (its peak is reached in the first; each takes minutes at 10⁷ rows)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"a subset of {','.join(MODES)}")
    parser.add_argument("--batch-size", type=int, default=1 << 18, help="rows per batch for fit_stream")
    parser.add_argument("--sklearn", action=argparse.BooleanOptionalAction, default=None,
                        help="include scikit-learn (default: when installed)")
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--dir", default=None, help="where to write the data file (default: a temporary directory)")
    parser.add_argument("--out", default="bench_memory.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Every child opts in to the faster XLA:CPU setting unless the caller chose (docs/performance.md).
    os.environ.setdefault("MIXTURES_XLA_CPU_FUSION", "off")
    if args.child:
        return child(json.loads(args.child))

    n, d, k = int(args.rows), args.features, args.components
    with_sklearn = args.sklearn if args.sklearn is not None else importlib.util.find_spec("sklearn") is not None
    modes = [m for m in args.modes.split(",") if m in MODES and (m != "sklearn" or with_sklearn)]
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_memory_") as folder:
        path = os.path.join(folder, "x.npy")
        means = write_file(path, n, d, k)
        data_bytes = n * d * 4
        spec = {"path": path, "means": means.tolist(), "iters": args.iters, "sklearn_iters": args.sklearn_iters,
                "batch_size": args.batch_size}
        for mode in modes:
            results[mode] = run_child_of(__file__, {**spec, "mode": mode}, args.timeout)
            print_row(mode, results[mode], data_bytes)
    reference = next((r["log_likelihood"] for r in results.values() if r["status"] == "ok" and r is not results.get("sklearn")), None)
    for mode, r in results.items():
        if r["status"] == "ok" and reference is not None:
            r["relative_difference"] = abs(r["log_likelihood"] - reference) / abs(reference)
            r["peak_minus_data_bytes"] = r["peak_bytes"] - data_bytes
    print(f"data: {n} × {d} float32 = {data_bytes / GIB:.2f} GiB; N×K responsibilities would be {n * k * 4 / GIB:.2f} GiB")
    target = results.get("mixtures-numpy", {"status": "not run"})
    if target["status"] == "ok":
        over = (target["peak_bytes"] - data_bytes) / GIB
        print(f"target (mixtures, NumPy input): peak − data = {over:.2f} GiB, {'met' if over < 1 else 'NOT met'} (< 1 GiB)")
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": n, "features": d, "components": k, "iters": args.iters, "data_bytes": data_bytes, "results": results,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


_HEADER = []


def print_row(mode, r, data_bytes):
    if not _HEADER:
        print(f"{'fit':<17} {'peak GiB':>9} {'peak−data GiB':>14} {'s/iter':>8} {'compile s':>9} {'mean log-lik':>13}")
        _HEADER.append(True)
    if r["status"] != "ok":
        print(f"{mode:<17} failed: {r.get('error')}")
        return
    compile_s = f"{r['compile_seconds']:.1f}" if "compile_seconds" in r else "-"
    print(f"{mode:<17} {r['peak_bytes'] / GIB:>9.2f} {(r['peak_bytes'] - data_bytes) / GIB:>14.2f} "
          f"{r['seconds_per_iter']:>8.3f} {compile_s:>9} {r['log_likelihood']:>13.6f}")


if __name__ == "__main__":
    main()
