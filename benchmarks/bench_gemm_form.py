"""The Gaussian's matrix-product form against its whitened residuals, in one process.

For each case this times one E-step and accumulation (``engine.accumulate``,
the body of every EM iteration) twice on the same data and parameters: once
as ``mx.fit`` runs it (the matrix-product form where the Gaussian's
``fast.product_form`` reports it usable), once as a one-off pass (the
whitened residuals alone), single and for 8 restarts under vmap. It prints
whether the Gaussian took the form for the fitted parameters
(ε · maxₖ qₖ ≤ 2⁻³², see docs/performance.md, N·K·M at least ``fast.MIN_WORK``
and M at least ``fast.MIN_WIDTH``; otherwise the two timings are of the same
program), both
times, their ratio, and the largest relative difference between the two sets
of sums.

Two data sets per shape: "bench", the draws of bench_em.py (random correlated
clusters, some of them nearly singular), with the parameters of a short fit;
and "round", unit-variance clusters with means spread over a few standard
deviations.

The script turns XLA:CPU's YNN fusion off (``mx.disable_xla_cpu_fusion()``,
docs/performance.md) unless ``XLA_FLAGS`` sets it.

Usage:
  python benchmarks/bench_gemm_form.py                  # float64, the default cases
  python benchmarks/bench_gemm_form.py --cases 100000x16x8 --reps 10
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mixtures as mx  # noqa: E402
from mixtures._src.core import blocks  # noqa: E402
from mixtures._src.families.gaussian import fast  # noqa: E402
from mixtures.engine import EMOptions, Rows, accumulate  # noqa: E402

from bench_em import make_data  # noqa: E402


def round_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 2.0, size=(k, d))
    return means[rng.choice(k, size=n)] + rng.standard_normal((n, d))


def best_seconds(fn, reps):
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def run_case(n, d, k, data_name, reps, restarts):
    x = make_data(n, d, k)[0] if data_name == "bench" else round_data(n, d, k)
    x = jnp.asarray(x)
    family = mx.Gaussian("full")
    m = mx.fit(x, family, k, key=jax.random.key(0), max_iter=5).mixture
    form = fast.product_form(family, m.params)
    width = form.natural.shape[0]
    usable = bool(form.usable) and n * form.natural.size >= fast.MIN_WORK and width >= fast.MIN_WIDTH
    many = jax.tree.map(lambda a: jnp.stack([a] * restarts), m)
    one_options = EMOptions(chunk_size=blocks.default_chunk_size(k, d))
    many_options = EMOptions(chunk_size=blocks.default_chunk_size(k * restarts, d))

    def timings(once):
        # once=True: the Gaussian's whitened residuals alone; False: as mx.fit runs each iteration.
        one = jax.jit(lambda m: accumulate(m, Rows(x), one_options, once=once))
        vm = jax.jit(blocks.vmap_restarts(
            lambda axes, m: accumulate(m, Rows(x), many_options.replace(axes=axes), once=once), blocks.Axes()
        ))
        return best_seconds(lambda: one(m), reps), best_seconds(lambda: vm(many), max(1, reps // 2)), one(m)

    fast_one, fast_many, fast_sums = timings(once=False)
    slow_one, slow_many, slow_sums = timings(once=True)
    diff = max(
        float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-300))
        for a, b in zip(jax.tree.leaves(fast_sums), jax.tree.leaves(slow_sums))
    )
    return dict(
        case=f"{n}x{d}x{k}", data=data_name, usable=usable,
        whitened=slow_one, form=fast_one, whitened_vmapped=slow_many, form_vmapped=fast_many, difference=diff,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="100000x16x8,1000000x2x8,1000000x16x16", help="comma-separated NxDxK")
    parser.add_argument("--reps", type=int, default=5, help="timed calls; the fastest counts (default 5)")
    parser.add_argument("--restarts", type=int, default=8, help="restarts under vmap (default 8)")
    args = parser.parse_args()
    mx.disable_xla_cpu_fusion()
    print("float64, full covariance; seconds per E-step and accumulation (best of --reps)")
    header = f"{'case':>14} {'data':>6} {'used':>6} {'whitened':>9} {'form':>8} {'ratio':>6}"
    header += f" {'whitened×R':>11} {'form×R':>8} {'ratio':>6} {'max diff':>9}"
    print(header)
    for case in args.cases.split(","):
        n, d, k = (int(v) for v in case.split("x"))
        for data_name in ("bench", "round"):
            r = run_case(n, d, k, data_name, args.reps, args.restarts)
            print(
                f"{r['case']:>14} {r['data']:>6} {'yes' if r['usable'] else 'no':>6}"
                f" {r['whitened']:9.4f} {r['form']:8.4f} {r['whitened'] / r['form']:5.2f}×"
                f" {r['whitened_vmapped']:11.4f} {r['form_vmapped']:8.4f} {r['whitened_vmapped'] / r['form_vmapped']:5.2f}×"
                f" {r['difference']:9.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
