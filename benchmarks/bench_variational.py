"""Variational Bayes: ``mx.fit_variational`` against scikit-learn's ``BayesianGaussianMixture``, seconds per update.

One run, on synthetic data (N rows, D columns, K well-separated Gaussian
clusters with random means, orientations and scales; full covariances),
fits a variational mixture of K_max = K components (stick-breaking weights)
from the same initial responsibilities (a random draw), for a fixed number of
updates (tol = 0), with:

- scikit-learn's ``BayesianGaussianMixture`` on float64 and on float32 data
  (it computes in the data's dtype), started from those responsibilities;
- ``mx.fit_variational`` in float32 and in float64 (float64 scoped with
  ``jax.enable_x64``).

Seconds per update are the difference between a fit of ``--updates`` updates
and one of a fifth as many, over the difference in updates: the start and
(for mixtures) the compilation drop out. The compile-and-first-fit seconds of
mixtures are reported on their own. The ratio column is scikit-learn float64's
seconds per update over each row's (the issue's target: ≥ 10× for float32).

XLA:CPU's "YNN" fusion changes JAX timings severalfold on small machines
(shared/JAX-CPU-NOTES.md); this script turns it off through
``mx.disable_xla_cpu_fusion()`` unless ``XLA_FLAGS`` names the setting, and
prints the setting in effect.

  python benchmarks/bench_variational.py                 # N = 10⁵, D = 16, K = 8
  python benchmarks/bench_variational.py --quick         # N = 2·10⁴: a smoke run
  python benchmarks/bench_variational.py --out vb.json

Absolute times on a shared machine drift by ±25% from run to run: compare the
ratios within one run. The script asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np

from bench_missing import make_data


def sklearn_seconds(x, resp, updates):
    """Seconds of scikit-learn's fit for ``updates`` updates from ``resp`` (its start included)."""
    from sklearn.mixture import BayesianGaussianMixture

    class FromResponsibilities(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp.astype(X.dtype))

    model = FromResponsibilities(n_components=resp.shape[1], max_iter=updates, tol=0.0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x)
    return time.perf_counter() - start, float(np.sum(model.weights_ > 0.01))


def mixtures_seconds(x, resp, updates):
    """Seconds of ``mx.fit_variational`` for ``updates`` updates from ``resp`` (compiled already)."""
    import jax

    import mixtures as mx

    start = time.perf_counter()
    result = mx.fit_variational(x, mx.Gaussian("full"), resp.shape[1], init=resp, max_iter=updates, tol=0.0)
    jax.block_until_ready(result.elbo)
    return time.perf_counter() - start, int(result.n_effective)


def per_update(run, x, resp, updates):
    short = max(updates // 5, 1)
    run(x, resp, short)  # warm: compiles (mixtures) and touches the memory
    long_s, used = run(x, resp, updates)
    short_s, _ = run(x, resp, short)
    return (long_s - short_s) / (updates - short), used


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--updates", type=int, default=25)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.n, args.updates = 20_000, 10

    import jax

    import mixtures as mx

    if "ynn_fusion" not in os.environ.get("XLA_FLAGS", ""):
        mx.disable_xla_cpu_fusion()
    fusion = "off" if "ynn_fusion_type=" in os.environ.get("XLA_FLAGS", "") else "as set in XLA_FLAGS"
    x, _ = make_data(args.n, args.d, args.k)
    resp = np.random.default_rng(3).dirichlet(np.ones(args.k), size=args.n)
    print(f"N={args.n} D={args.d} K={args.k}, {args.updates} updates; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; XLA:CPU YNN fusion {fusion}")

    rows = []
    ref, used = per_update(sklearn_seconds, x, resp, args.updates)
    rows.append(("scikit-learn float64", ref, None, used))
    s32, used = per_update(sklearn_seconds, x.astype(np.float32), resp, args.updates)
    rows.append(("scikit-learn float32", s32, None, used))
    for name, dtype, x64 in (("mixtures float32", np.float32, False), ("mixtures float64", np.float64, True)):
        with jax.enable_x64(x64):
            data = x.astype(dtype)
            start = time.perf_counter()
            mixtures_seconds(data, resp, 2)
            first = time.perf_counter() - start
            seconds, used = per_update(mixtures_seconds, data, resp, args.updates)
        rows.append((name, seconds, first, used))

    print(f"{'':24s}{'s/update':>10s}{'× sklearn f64':>15s}{'first fit s':>13s}{'used':>6s}")
    for name, seconds, first, used in rows:
        first_text = "" if first is None else f"{first:.2f}"
        print(f"{name:24s}{seconds:10.4f}{ref / seconds:15.1f}{first_text:>13s}{used:>6}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"n": args.n, "d": args.d, "k": args.k, "updates": args.updates, "fusion": fusion,
                       "rows": [{"name": r[0], "seconds_per_update": r[1], "first_fit_seconds": r[2], "used": r[3]}
                                for r in rows]}, handle, indent=2)


if __name__ == "__main__":
    main()
