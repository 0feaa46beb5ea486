"""Seconds per EM iteration for full-covariance Gaussian mixtures: mixtures against scikit-learn.

Each implementation runs in its own subprocess (so its peak memory is its own),
on the same data drawn from a known mixture and from the same initial
parameters. Reported per case and implementation: compile (or first-call)
seconds, seconds per EM iteration, the ratio to scikit-learn, the fraction of
the matrix-multiply floor (4·N·K·M flops per iteration, M = D + D(D+1)/2,
at this machine's measured GEMM rate), peak resident memory, and the final
mean log-likelihood (all must agree).

Usage:
  python benchmarks/bench_em.py                 # the quick cases
  python benchmarks/bench_em.py --full          # the full table
  python benchmarks/bench_em.py --out results.json

The XLA CPU fusion setting changes timings severalfold on these machines; the
script records XLA_FLAGS as it finds them. Compare runs made with the same flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

QUICK_CASES = [(100_000, 2, 3), (100_000, 16, 8)]
FULL_CASES = [(100_000, 2, 3), (100_000, 16, 8), (1_000_000, 16, 16), (200_000, 64, 32), (1_000_000, 2, 8)]
IMPLEMENTATIONS = ["mixtures-f32", "mixtures-f64", "sklearn-f64"]
N_ITER = 10


def make_problem(n, d, k, seed=0):
    """Data from a known mixture and initial parameters near (not at) the truth."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(k, d))
    factors = rng.normal(0.0, 0.3, size=(k, d, d)) + np.eye(d)
    z = rng.choice(k, size=n)
    x = means[z] + np.einsum("nd,nde->ne", rng.standard_normal((n, d)), factors[z])
    init_means = means + rng.normal(0.0, 0.5, size=means.shape)
    init_covs = np.stack([np.cov(x.T) / k + 0.1 * np.eye(d)] * k)
    return x, np.full(k, 1.0 / k), init_means, init_covs


def run_one(impl, n, d, k):
    """Runs in the subprocess: returns a dict of measurements."""
    import resource

    import numpy as np

    x, w0, mu0, cov0 = make_problem(n, d, k)
    out = {}
    if impl.startswith("mixtures"):
        import jax

        if impl.endswith("f64"):
            jax.config.update("jax_enable_x64", True)
        import mixtures as mx

        dtype = np.float64 if impl.endswith("f64") else np.float32
        x = x.astype(dtype)
        family = mx.Gaussian("full")
        start = mx.Mixture(w0.astype(dtype), family.make_params(mu0.astype(dtype), cov0), family)
        t = time.perf_counter()
        r = mx.fit(x, family, k, key=None, init=start, max_iter=1, tol=0.0)
        r.log_likelihood.block_until_ready()
        out["first_call_s"] = time.perf_counter() - t
        t = time.perf_counter()
        r = mx.fit(x, family, k, key=None, init=start, max_iter=1, tol=0.0)
        r.log_likelihood.block_until_ready()
        one = time.perf_counter() - t
        r = mx.fit(x, family, k, key=None, init=start, max_iter=N_ITER + 1, tol=0.0)  # compiles once more
        r.log_likelihood.block_until_ready()
        t = time.perf_counter()
        r = mx.fit(x, family, k, key=None, init=start, max_iter=N_ITER + 1, tol=0.0)
        r.log_likelihood.block_until_ready()
        out["per_iter_s"] = (time.perf_counter() - t - one) / N_ITER
        out["log_likelihood"] = float(r.history[N_ITER])
    elif impl == "sklearn-f64":
        import warnings

        from sklearn.mixture import GaussianMixture

        kw = dict(n_components=k, covariance_type="full", weights_init=w0, means_init=mu0,
                  precisions_init=np.linalg.inv(cov0), tol=0.0, reg_covar=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            GaussianMixture(max_iter=1, **kw).fit(x)
            one = time.perf_counter() - t
            t = time.perf_counter()
            gm = GaussianMixture(max_iter=N_ITER + 1, **kw).fit(x)
            out["per_iter_s"] = (time.perf_counter() - t - one) / N_ITER
        out["first_call_s"] = 0.0
        out["log_likelihood"] = float(gm.lower_bound_)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def gemm_rate():
    """float32 and float64 GFLOP/s of a jitted 2048² matmul on this machine."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    rates = {}
    for dtype in ("float32", "float64"):
        a = jnp.ones((2048, 2048), dtype)
        f = jax.jit(lambda a: a @ a)
        f(a).block_until_ready()
        t = time.perf_counter()
        for _ in range(5):
            f(a).block_until_ready()
        rates[dtype] = 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="run the full table of cases")
    parser.add_argument("--out", default="bench_em.json", help="where to write the JSON results")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, n, d, k = args.child
        print(json.dumps(run_one(impl, int(n), int(d), int(k))))
        return

    rates = gemm_rate()
    print(f"GEMM rate: {rates['float32']:.0f} GFLOP/s float32, {rates['float64']:.0f} GFLOP/s float64")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    rows = []
    header = f"{'N':>9} {'D':>3} {'K':>3}  {'implementation':<16} {'s/iter':>9} {'vs sklearn':>10} {'of floor':>9} {'compile s':>9} {'peak GiB':>8} {'mean log-lik':>13}"
    print(header)
    for n, d, k in FULL_CASES if args.full else QUICK_CASES:
        m = d + d * (d + 1) // 2
        results = {}
        for impl in IMPLEMENTATIONS:
            proc = subprocess.run([sys.executable, __file__, "--child", impl, str(n), str(d), str(k)],
                                  capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                results[impl] = {"skipped": last[:80]}
                continue
            results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        ref = results.get("sklearn-f64", {}).get("per_iter_s")
        for impl, r in results.items():
            if "skipped" in r:
                print(f"{n:>9} {d:>3} {k:>3}  {impl:<16} skipped: {r['skipped']}")
                continue
            rate = rates["float64" if impl.endswith("f64") else "float32"] * 1e9
            r["floor_s"] = 4 * n * k * m / rate
            r["fraction_of_floor"] = r["floor_s"] / r["per_iter_s"]
            r["speedup_vs_sklearn"] = ref / r["per_iter_s"] if ref else None
            print(f"{n:>9} {d:>3} {k:>3}  {impl:<16} {r['per_iter_s']:9.4f} "
                  f"{(r['speedup_vs_sklearn'] or float('nan')):9.1f}x {r['fraction_of_floor']:9.3f} "
                  f"{r['first_call_s']:9.2f} {r['peak_rss_gib']:8.2f} {r['log_likelihood']:13.6f}")
            rows.append({"n": n, "d": d, "k": k, "implementation": impl, **r})
    with open(args.out, "w") as f:
        json.dump({"gemm_gflops": rates, "xla_flags": os.environ.get("XLA_FLAGS", ""), "results": rows}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
