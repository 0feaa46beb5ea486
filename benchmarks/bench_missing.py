"""EM with missing values: seconds per iteration against the same data complete.

One run measures, on synthetic data (N rows, D columns, K well-separated
Gaussian clusters with random means, random orientations and random scales;
full covariances), one EM iteration of the engine, ``mixtures.engine.step``,
jitted and compiled once (compile seconds reported separately), then called
``--repeats`` times (median and best seconds reported):

- "complete": the data with no missing entry, ``EMOptions(missing=0)``: the
  complete-data path a fit takes (the family's fast pass);
- "missing": the same data with a fraction ``--missing-rate`` of the entries
  set to NaN completely at random (a row left with nothing observed gets one
  entry back), ``EMOptions(missing=M)`` with M the most NaN in any row: the
  exact observed-entry E-step of ``mx.fit(..., missing="marginalize")``,
  with the rows sorted by their number of missing entries as the fit sorts
  them (each row block's work is sized by the most its own rows miss).

Both run in float32 and in float64 (float64 scoped with ``jax.enable_x64``),
from the same starting mixture (the true one, perturbed), with

- the same chunk size (``--chunk-size``; default the one a complete-data fit
  picks, ``default_chunk_size(K, D)``): the cost of the missing-value E-step
  itself, row block for row block;
- for "missing", also the chunk size the fit would pick for these rows,
  ``default_chunk_size(K, row_width(D, M))`` (a row missing M entries also
  holds the M (M + 1) / 2 entries of its precision's missing block per
  component, so the fit may use smaller blocks), against "complete" at its
  own default: the ratio a user of ``mx.fit`` sees.

The ratio missing/complete is printed per dtype (the issue's target is ≤ 4×).
A breakdown then times the two family hooks of the missing-value path alone,
``log_prob_observed`` (densities of the observed entries) and
``accumulate_observed`` (expected statistics, with fixed responsibilities),
each summed over the same row blocks as the step, against their complete-data
counterparts ``log_prob_components`` and ``accumulate`` (``--no-breakdown``
skips it). Each hook builds the conditional moments it needs on its own, so
the step, which calls both, may pay for those moments twice unless XLA merges
the two computations.

XLA:CPU's "YNN" fusion changes JAX timings severalfold on small machines
(shared/JAX-CPU-NOTES.md). This script leaves ``XLA_FLAGS`` as it finds it and
prints the setting in effect; run it twice to compare:

  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/bench_missing.py   # fusion off
  python benchmarks/bench_missing.py                                                     # jaxlib's default
  python benchmarks/bench_missing.py --quick        # N = 2·10⁴, 3 repeats: a smoke run
  python benchmarks/bench_missing.py --n 200000 --d 32 --k 16 --missing-rate 0.1 --dtypes float32

Absolute times on a shared machine drift by ±25% from run to run: compare the
ratios within one run. The script asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
TARGET_RATIO = 4.0


# ---------------------------------------------------------------------------
# Data


def make_data(n, d, k, seed=0):
    """(n, d) float64 rows from k full-covariance Gaussians, and the (weights, means, covariances) drawn.

    Means are spread far apart (N(0, 5²) per coordinate: pairwise distances
    around 5·√(2D)); each covariance is Q diag(s²) Qᵀ with Q a random rotation
    (QR of a Gaussian matrix) and scales s uniform in [0.5, 2].
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 5.0, size=(k, d))
    rotations = np.linalg.qr(rng.standard_normal((k, d, d)))[0]
    scales = rng.uniform(0.5, 2.0, size=(k, d))
    factors = rotations * scales[:, None, :]  # Q diag(s): covariance Q diag(s²) Qᵀ
    covariances = factors @ np.swapaxes(factors, 1, 2)
    weights = rng.dirichlet(np.full(k, 5.0))
    z = rng.choice(k, size=n, p=weights)
    x = rng.standard_normal((n, d))
    for j in range(k):
        rows = z == j
        x[rows] = means[j] + x[rows] @ factors[j].T
    return x, (weights, means, covariances)


def hide_entries(x, rate, seed=1):
    """A copy of ``x`` with each entry NaN with probability ``rate`` (MCAR); rows with nothing left get one back."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    hidden = rng.random((n, d)) < rate
    empty = np.flatnonzero(hidden.all(axis=1))
    hidden[empty, rng.integers(0, d, size=empty.size)] = False
    out = x.copy()
    out[hidden] = np.nan
    return out, empty.size


def make_start(truth, seed=2):
    """A starting point near (not at) the truth: means moved by N(0, 0.5²), covariances inflated by 20%."""
    weights, means, covariances = truth
    rng = np.random.default_rng(seed)
    return np.full(len(weights), 1.0 / len(weights)), means + rng.normal(0.0, 0.5, means.shape), 1.2 * covariances


# ---------------------------------------------------------------------------
# Timing


def compile_and_time(jax, fn, args, repeats):
    """(compile seconds, median seconds, best seconds, result) of ``jax.jit(fn)`` on ``args``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    result = jax.block_until_ready(compiled(*args))  # warm-up: first call allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times), min(times), result


def measure_dtype(args, dtype, x_full, x_missing, max_missing, start):
    """All the rows of the table (and of the breakdown) for one dtype. Runs inside the dtype's x64 scope."""
    import jax
    import jax.numpy as jnp

    import mixtures as mx
    from mixtures import engine
    from mixtures._src.core import blocks

    family = mx.Gaussian("full")
    weights, means, covariances = (np.asarray(a, dtype) for a in start)
    mixture = mx.Mixture(weights, family.make_params(means, covariances), family)
    assert mixture.weights.dtype == np.dtype(dtype), (mixture.weights.dtype, dtype)
    rows_full = engine.Rows(jax.device_put(x_full.astype(dtype)))
    rows_missing = engine.Rows(jax.device_put(x_missing.astype(dtype)))
    k, d = means.shape
    n = x_full.shape[0]
    same_chunk = args.chunk_size or blocks.default_chunk_size(k, d)
    fit_chunk_full = blocks.default_chunk_size(k, d)
    fit_chunk_missing = rows_chunk(k, d, max_missing)

    def step_program(options):
        return lambda m, r: engine.step(m, r, options)

    out = {"rows": [], "breakdown": []}
    cases = [
        ("complete", rows_full, 0, same_chunk),
        ("missing", rows_missing, max_missing, same_chunk),
    ]
    if fit_chunk_missing != same_chunk:
        cases.append(("missing", rows_missing, max_missing, fit_chunk_missing))
    if fit_chunk_full != same_chunk:
        cases.append(("complete", rows_full, 0, fit_chunk_full))
    for name, rows, m, chunk in cases:
        options = engine.EMOptions(chunk_size=chunk, missing=m)
        compile_s, median_s, best_s, (_, ll, refused) = compile_and_time(
            jax, step_program(options), (mixture, rows), args.repeats
        )
        out["rows"].append(dict(
            case=name, dtype=dtype, chunk=min(chunk, n), missing=m, compile_s=compile_s, median_s=median_s,
            best_s=best_s, ll=float(ll), refused=int(np.sum(refused)),
            fit_default=chunk == (fit_chunk_missing if m else fit_chunk_full),
        ))

    if args.breakdown:
        params = mixture.params
        ones = jnp.full((k,), 1.0 / k, dtype)

        def summed(block):  # Σ over the step's row blocks of block(x, w) (a pytree)
            return lambda p, x: blocks.sum_over_chunks(lambda xb, w, _: block(p, xb, w), x, None, same_chunk)

        programs = [
            ("complete", "log_prob_components", rows_full.x,
             lambda p, x, w: jnp.sum(family.log_prob_components(p, x) * w[:, None])),
            ("complete", "accumulate", rows_full.x,
             lambda p, x, w: family.accumulate(p, x, w[:, None] * ones)),
            ("missing", "log_prob_observed", rows_missing.x,
             lambda p, x, w: jnp.sum(family.log_prob_observed(p, x, max_missing) * w[:, None])),
            ("missing", "accumulate_observed", rows_missing.x,
             lambda p, x, w: family.accumulate_observed(p, x, w[:, None] * ones, max_missing)),
        ]
        for case, hook, x, block in programs:
            compile_s, median_s, best_s, _ = compile_and_time(jax, summed(block), (params, x), args.repeats)
            out["breakdown"].append(dict(
                case=case, hook=hook, dtype=dtype, compile_s=compile_s, median_s=median_s, best_s=best_s,
            ))
    return out


# ---------------------------------------------------------------------------
# Report


def fusion_setting():
    """How XLA_FLAGS sets the YNN fusion (the last mention wins), in words."""
    flags = os.environ.get("XLA_FLAGS", "")
    value = None
    for flag in flags.split():
        name, _, rest = flag.partition("=")
        if name == YNN_FLAG:
            value = rest
    library = os.environ.get("MIXTURES_XLA_CPU_FUSION")
    if value is None and library == "off":
        return "off (MIXTURES_XLA_CPU_FUSION=off)"
    if value is None:
        return "jaxlib default (XLA_FLAGS does not name it)"
    if value == "":
        return f"off ({YNN_FLAG}=)"
    return f"{YNN_FLAG}={value}"


def print_tables(results, n, d, k, max_missing, rate, n_refilled, repeats):
    print()
    header = f"{'case':<9} {'dtype':<8} {'M':>3} {'chunk':>6} {'fit default':>11} {'compile s':>9} " \
             f"{'s/iter (median)':>15} {'best':>8} {'mean ll':>9} {'refused':>7}"
    print(header)
    print("-" * len(header))
    for dtype, res in results.items():
        for r in res["rows"]:
            print(f"{r['case']:<9} {r['dtype']:<8} {r['missing']:>3} {r['chunk']:>6} "
                  f"{'yes' if r['fit_default'] else 'no':>11} {r['compile_s']:>9.2f} {r['median_s']:>15.4f} "
                  f"{r['best_s']:>8.4f} {r['ll']:>9.3f} {r['refused']:>7}")

    print()
    print(f"Ratio missing / complete (median s/iter; target ≤ {TARGET_RATIO:g}×):")
    for dtype, res in results.items():
        rows = res["rows"]
        complete = {r["chunk"]: r for r in rows if r["case"] == "complete"}
        missing = {r["chunk"]: r for r in rows if r["case"] == "missing"}
        same = [c for c in missing if c in complete]
        lines = [(f"same chunk for both ({c} rows)", missing[c]["median_s"] / complete[c]["median_s"]) for c in same]
        fit_c = next(r for r in rows if r["case"] == "complete" and r["fit_default"])
        fit_m = next(r for r in rows if r["case"] == "missing" and r["fit_default"])
        lines.append((f"each at the fit's default chunk ({fit_m['chunk']} vs {fit_c['chunk']} rows)",
                      fit_m["median_s"] / fit_c["median_s"]))
        for label, ratio in lines:
            flag = "" if ratio <= TARGET_RATIO else "   ABOVE TARGET"
            print(f"  {dtype:<8} {label:<50} {ratio:7.2f}×{flag}")

    breakdown = [b for res in results.values() for b in res["breakdown"]]
    if breakdown:
        print()
        print("Breakdown: each family hook alone, summed over the same row blocks (same chunk as above), "
              "median s; share = hook / its step")
        header = f"{'case':<9} {'dtype':<8} {'hook':<20} {'compile s':>9} {'s (median)':>10} {'best':>8} {'share':>6}"
        print(header)
        print("-" * len(header))
        for dtype, res in results.items():
            step_s = {}  # each case's first row: the step at the breakdown's chunk size
            for r in res["rows"]:
                step_s.setdefault(r["case"], r["median_s"])
            for b in res["breakdown"]:
                share = b["median_s"] / step_s[b["case"]]
                print(f"{b['case']:<9} {b['dtype']:<8} {b['hook']:<20} {b['compile_s']:>9.2f} {b['median_s']:>10.4f} "
                      f"{b['best_s']:>8.4f} {share:>6.2f}")
            hooks = {b["hook"]: b["median_s"] for b in res["breakdown"]}
            if "log_prob_observed" in hooks:
                print(f"{'':<9} {dtype:<8} hooks missing/complete: log_prob "
                      f"{hooks['log_prob_observed'] / hooks['log_prob_components']:.2f}×, accumulate "
                      f"{hooks['accumulate_observed'] / hooks['accumulate']:.2f}×")

    print()
    print("Notes:")
    print(f"  - M = {max_missing}: the most NaN in any row ({rate:.0%} of entries hidden at random; "
          f"{n_refilled} row(s) with nothing observed got one entry back). The compiled program is built for M.")
    print("  - 'complete' runs the family's fast complete-data pass (what mx.fit uses); the breakdown's "
          "complete hooks are the generic pass's.")
    print("  - mean ll: mean log-likelihood per row before the step (observed entries only for 'missing'); "
          "refused: components whose M-step update was refused (0 expected).")
    print(f"  - fit default chunk: default_chunk_size(K, D) = {rows_chunk(k, d, 0)} rows complete, "
          f"default_chunk_size(K, row_width(D, M)) = {rows_chunk(k, d, max_missing)} rows missing.")
    print(f"  - {repeats} timed calls after a warm-up call; N={n}, D={d}, K={k}, full covariance.")


def rows_chunk(k, d, m):
    from mixtures._src.core import blocks
    from mixtures._src.core.incomplete import row_width

    return blocks.default_chunk_size(k, row_width(d, m))


# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rows (default 10⁵; 2·10⁴ with --quick)")
    parser.add_argument("--d", type=int, default=16, help="columns (default 16)")
    parser.add_argument("--k", type=int, default=8, help="components (default 8)")
    parser.add_argument("--missing-rate", type=float, default=0.2, help="fraction of entries hidden (default 0.2)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="rows per block for the same-chunk comparison (default: default_chunk_size(K, D))")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per program (default 7; 3 with --quick)")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated (default float32,float64)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip timing the family hooks alone")
    parser.add_argument("--quick", action="store_true",
                        help="N = 2·10⁴ (unless --n is given), 3 repeats: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick and args.n == parser.get_default("n"):
        args.n = 20_000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    dtypes = [t.strip() for t in args.dtypes.split(",") if t.strip()]
    for t in dtypes:
        if t not in ("float32", "float64"):
            parser.error(f"--dtypes: {t!r} is not float32 or float64")
    if not 0.0 <= args.missing_rate < 1.0:
        parser.error("--missing-rate must be in [0, 1)")

    import jax
    import jaxlib

    x_full, truth = make_data(args.n, args.d, args.k, args.seed)
    x_missing, n_refilled = hide_entries(x_full, args.missing_rate, args.seed + 1)
    # As mx.fit does: rows sorted by their number of missing entries, so that each row block's work
    # is sized by its own rows (the complete data in the same order: the same sums, in another order).
    order = np.argsort(np.sum(np.isnan(x_missing), axis=1), kind="stable")
    x_missing, x_full = x_missing[order], x_full[order]
    max_missing = int(np.max(np.sum(np.isnan(x_missing), axis=1)))
    start = make_start(truth, args.seed + 2)

    print(f"EM with missing values: N={args.n}, D={args.d}, K={args.k}, full covariance, "
          f"{args.missing_rate:.0%} missing (M={max_missing})")
    print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"device {jax.devices()[0].platform}")
    print(f"XLA:CPU YNN fusion: {fusion_setting()}")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")

    results = {}
    for dtype in dtypes:
        with jax.enable_x64(dtype == "float64"):
            results[dtype] = measure_dtype(args, dtype, x_full, x_missing, max_missing, start)
    print_tables(results, args.n, args.d, args.k, max_missing, args.missing_rate, n_refilled, args.repeats)


if __name__ == "__main__":
    main()
