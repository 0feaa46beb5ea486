"""Online EM (``mx.fit_online``) against batch EM (``mx.fit``) and exact streaming EM (``mx.fit_stream``).

All methods fit the same float32 data, drawn from a known mixture of K
full-covariance Gaussians in D dimensions and held in memory, from the same
warm start (the true means moved by N(0, 0.5²), unit covariances, equal
weights). Every method runs twice and the second run is timed, so compilation
is left out:

- **batch**: ``mx.fit`` to ``--tol`` (at most ``--max-iter`` iterations);
- **stream**: ``mx.fit_stream`` with the same tolerance, batches of
  ``--stream-batch`` rows (skip with ``--no-stream``);
- **online-E**: ``mx.fit_online`` for E = 1 and 2 epochs, minibatches of
  ``--batch-size`` rows, the default step sizes, Polyak–Ruppert averaging from
  a quarter of the first epoch. Its time includes the validating pass and the
  statistics of the initialisation sample.

Reported per method: wall seconds, passes over the data, and the final mean
log-likelihood per row on all the data (for online EM, of the last iterate
and of the averaged one), with its gap to batch EM's. Log-likelihood against
wall time: for batch and stream EM from their progress callbacks (the value
of the mixture before each iteration), for online EM from a loop of
``online_em`` updates paused ``--checkpoints`` times per epoch to score the
current iterate on all the data (the scoring is not timed).

The script turns XLA:CPU's YNN fusion off (``mx.disable_xla_cpu_fusion()``,
docs/performance.md) unless ``XLA_FLAGS`` sets it; the flags are printed.

Usage:
  python benchmarks/bench_online.py                                    # N = 2e6, D = 16, K = 8
  python benchmarks/bench_online.py --rows 400000 --out online.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def make_data(n, d, k, seed=0):
    """N float32 rows of a K-cluster full-covariance mixture in D dimensions, and its means."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(k, d))
    factors = rng.normal(0.0, 0.3, size=(k, d, d)) + np.eye(d)
    z = rng.choice(k, size=n)
    x = means[z] + np.einsum("nd,nde->ne", rng.standard_normal((n, d)), factors[z])
    return x.astype(np.float32), means


def start_mixture(means):
    import mixtures as mx

    rng = np.random.default_rng(1)
    k, d = means.shape
    family = mx.Gaussian("full")
    shifted = (means + rng.normal(0.0, 0.5, size=means.shape)).astype(np.float32)
    covs = np.stack([np.eye(d, dtype=np.float32)] * k)
    return mx.Mixture(np.full(k, 1.0 / k, np.float32), family.make_params(shifted, covs), family)


def timed_twice(run):
    """``run(record)`` twice; returns the second run's result, seconds and (seconds, value) trace."""
    run(lambda p: None)
    trace = []
    t0 = time.perf_counter()
    result = run(lambda p: trace.append((time.perf_counter() - t0, float(p.log_likelihood))))
    return result, time.perf_counter() - t0, trace


def bench_batch(x, start, args):
    import mixtures as mx

    def run(record):
        r = mx.fit(x, start.family, start.n_components, key=None, init=start, tol=args.tol, max_iter=args.max_iter, callback=record)
        r.log_likelihood.block_until_ready()
        return r

    result, seconds, trace = timed_twice(run)
    n_iter = int(result.n_iter)
    return {"seconds": seconds, "passes": n_iter + 1, "n_iter": n_iter, "mixture": result.mixture, "trace": trace}


def bench_stream(x, start, args):
    import mixtures as mx

    def run(record):
        return mx.fit_stream(
            x, start.family, start.n_components, key=None, init=start, tol=args.tol, max_iter=args.max_iter,
            batch_size=args.stream_batch, callback=record,
        )

    result, seconds, trace = timed_twice(run)
    n_iter = int(result.n_iter)
    return {"seconds": seconds, "passes": n_iter + 2, "n_iter": n_iter, "mixture": result.mixture, "trace": trace}


def bench_online(x, start, args, epochs):
    from mixtures.online import fit_online

    steps_per_epoch = -(-x.shape[0] // args.batch_size)
    averaging_start = steps_per_epoch // 4

    def run(record):
        r = fit_online(
            x, start.family, start.n_components, key=None, init=start, batch_size=args.batch_size,
            n_epochs=epochs, averaging_start=averaging_start,
        )
        r.log_likelihood.block_until_ready()
        return r

    result, seconds, _ = timed_twice(run)
    return {
        "seconds": seconds, "passes": epochs + 1, "n_steps": result.n_steps, "averaging_start": averaging_start,
        "mixture": result.mixture, "averaged": result.averaged, "estimate": float(result.log_likelihood),
    }


def online_trace(x, start, args, epochs, score):
    """(update seconds, full-data log-likelihood) of the online iterate at checkpoints; scoring untimed."""
    import jax

    from mixtures.online import online_em, polynomial_decay

    b = args.batch_size
    n = x.shape[0] // b * b  # whole batches only, so the update compiles once
    sample = x[np.random.default_rng(0).choice(x.shape[0], size=min(10_000, x.shape[0]), replace=False)]
    opt = online_em(polynomial_decay(0.6, offset=sample.shape[0] / b))
    state = opt.init(start, sample)
    jax.block_until_ready(opt.update(state, x[:b]))  # compile
    every = max(1, (n // b) // args.checkpoints)
    trace, elapsed = [(0.0, score(start))], 0.0
    for epoch in range(epochs):
        for i, lo in enumerate(range(0, n, b)):
            t0 = time.perf_counter()
            state = opt.update(state, x[lo : lo + b])
            if (i + 1) % every == 0 or lo + b == n:
                jax.block_until_ready(state)
                elapsed += time.perf_counter() - t0
                trace.append((elapsed, score(state.mixture)))
            else:
                elapsed += time.perf_counter() - t0
    return trace


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=2e6, help="N")
    parser.add_argument("--features", type=int, default=16, help="D")
    parser.add_argument("--components", type=int, default=8, help="K")
    parser.add_argument("--batch-size", type=int, default=1024, help="online minibatch rows")
    parser.add_argument("--stream-batch", type=int, default=65536, help="fit_stream batch rows")
    parser.add_argument("--tol", type=float, default=1e-4, help="batch and stream EM tolerance")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=8, help="online trace points per epoch")
    parser.add_argument("--no-stream", action="store_true", help="skip mx.fit_stream")
    parser.add_argument("--out", default="bench_online.json")
    args = parser.parse_args(argv)

    import jax

    import mixtures as mx

    mx.disable_xla_cpu_fusion()
    n, d, k = int(args.rows), args.features, args.components
    x, means = make_data(n, d, k)
    start = start_mixture(means)
    score_jit = jax.jit(lambda m, rows: m.log_prob(rows).mean())

    def score(m):
        return float(score_jit(m, x))

    print(f"N={n} D={d} K={k} float32, full covariance; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"jax {jax.__version__}, {os.cpu_count()} CPUs")
    results = {"batch": bench_batch(x, start, args)}
    if not args.no_stream and hasattr(mx, "fit_stream"):
        results["stream"] = bench_stream(x, start, args)
    for epochs in (1, 2):
        results[f"online-{epochs}"] = bench_online(x, start, args, epochs)
    trace = online_trace(x, start, args, 2, score)

    reference = score(results["batch"]["mixture"])
    rows = []
    print(f"{'method':>16} {'seconds':>8} {'passes':>7} {'mean ll':>10} {'Δ vs batch':>11}")
    for name, r in results.items():
        entries = [(name, r["mixture"])]
        if "averaged" in r:
            entries.append((f"{name} averaged", r["averaged"]))
        for label, m in entries:
            ll = score(m)
            rows.append({"method": label, "seconds": r["seconds"], "passes": r["passes"], "log_likelihood": ll,
                         "gap": ll - reference})
            print(f"{label:>16} {r['seconds']:>8.2f} {r['passes']:>7d} {ll:>10.5f} {ll - reference:>11.2e}")
    print("\nlog-likelihood against wall time (seconds: mean ll)")
    traces = {name: r["trace"] for name, r in results.items() if "trace" in r}
    traces["online updates"] = trace
    for name, points in traces.items():
        shown = points if len(points) <= 10 else [points[i] for i in np.linspace(0, len(points) - 1, 10).astype(int)]
        print(f"{name:>16}: " + "  ".join(f"{t:.2f}s {v:.4f}" for t, v in shown))
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "rows": n, "features": d, "components": k, "batch_size": args.batch_size, "stream_batch": args.stream_batch,
        "tol": args.tol, "results": rows,
        "details": {name: {key: v for key, v in r.items() if key not in ("mixture", "averaged", "trace")}
                    for name, r in results.items()},
        "traces": traces,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
