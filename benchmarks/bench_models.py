"""The covariance model × K grid: mixtures' ``select(models="all")`` against R mclust's ``Mclust()``.

Both fit mclust's fourteen covariance models for K = 1..9 to the same data
(by default 10⁵ rows in 8 dimensions, drawn from four Gaussian clusters with
random orientations and eigenvalues log-uniform over [1, 10]) and pick the
best by BIC. mixtures runs the grid twice in one process, in float32 and in
float64: the first call compiles (one start, segment and finish program per
model) and the second, identical one does not, so "compile" is the first
call's time minus the second's. mclust runs in an R subprocess
(``Rscript``; Debian's ``r-cran-mclust``), timed inside R around the one
``Mclust()`` call, with its defaults: its hierarchical start on a subset of
2000 rows, EM until the relative change of the log-likelihood is below 1e-5.

mixtures stops when the mean log-likelihood per row changes by less than
``--tol`` or after ``--max-iter`` iterations. By default ``--tol`` is mclust's
rule in mixtures' terms: mclust stops when |l − l_old| / (1 + |l|) < 1e-5 for
the total log-likelihood l = N ℓ̄, that is when ℓ̄ changes by less than about
1e-5 |ℓ̄|; ℓ̄ is taken as that of one Gaussian fitted to the data (closed
form), which the fits' values are near. The table reports, for each, the
seconds, the best model and K with its BIC (mclust's sign, higher is better)
and how many of the 126 fits converged; the ratio is mclust's seconds over
mixtures'. It asserts nothing about time.

Run from the repository root (about 10 minutes on 2 cores):

    python benchmarks/bench_models.py
    python benchmarks/bench_models.py --n 20000 --ks 1-5 --out models.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import mixtures as mx  # noqa: E402

R_SCRIPT = textwrap.dedent(
    """
    suppressMessages(library(mclust))
    args <- commandArgs(trailingOnly = TRUE)
    n <- as.integer(args[2]); d <- as.integer(args[3])
    x <- matrix(readBin(args[1], "double", n * d, size = 8, endian = "little"), n, d, byrow = TRUE)
    ks <- eval(parse(text = args[4]))
    seconds <- system.time(fit <- Mclust(x, G = ks, verbose = FALSE))[["elapsed"]]
    bic <- fit$BIC
    cat(jsonlite::toJSON(list(
      seconds = seconds,
      model = fit$modelName, K = fit$G, bic = fit$bic, loglik = fit$loglik,
      n_fitted = sum(!is.na(bic)), n_cells = length(bic),
      version = as.character(packageVersion("mclust"))
    ), auto_unbox = TRUE, digits = NA))
    """
)


def make_data(n, d, k=4, seed=0):
    """n rows from k clusters: random orientations, eigenvalues log-uniform over [1, 10], means 6 apart on average."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 6.0 / np.sqrt(2), (k, d))
    labels = rng.integers(0, k, n)
    x = np.empty((n, d))
    for j in range(k):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        sd = np.sqrt(10.0 ** rng.uniform(0.0, 1.0, d))
        rows = labels == j
        x[rows] = means[j] + (rng.standard_normal((rows.sum(), d)) * sd) @ q.T
    return x


def mclust_tolerance(x, relative=1e-5):
    """1e-5 |ℓ̄₁|, ℓ̄₁ the mean log-likelihood per row of one Gaussian fitted to x: mclust's stopping rule."""
    d = x.shape[1]
    _, log_det = np.linalg.slogdet(np.cov(x.T, bias=True))
    return relative * 0.5 * (d * np.log(2 * np.pi) + log_det + d)


def run_mixtures(x, ks, dtype, tol, max_iter, init):
    data = x.astype(dtype)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        selection = mx.select(
            data, mx.Gaussian, ks, models="all", key=jax.random.key(0), init=init, tol=tol, max_iter=max_iter
        )
        times.append(time.perf_counter() - start)
    best = min(selection.table, key=lambda row: row["bic"])
    return {
        "seconds": times[1],
        "compile": times[0] - times[1],
        "model": mx.Gaussian(best["model"]).model,
        "K": best["n_components"],
        "bic": best["bic_mclust"],
        "n_converged": sum(row["converged"] for row in selection.table),
        "n_cells": len(selection.table),
    }


def run_mclust(x, ks, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        data, script = os.path.join(tmp, "x.bin"), os.path.join(tmp, "grid.R")
        x.astype("<f8").tofile(data)
        with open(script, "w") as f:
            f.write(R_SCRIPT)
        n, d = x.shape
        done = subprocess.run(
            ["Rscript", script, data, str(n), str(d), f"{ks[0]}:{ks[-1]}"],
            capture_output=True, text=True, timeout=timeout,
        )
    if done.returncode != 0:
        raise RuntimeError(f"Rscript failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows (default 100000)")
    parser.add_argument("--d", type=int, default=8, help="dimensions (default 8)")
    parser.add_argument("--ks", default="1-9", help="K range, FIRST-LAST (default 1-9)")
    parser.add_argument("--tol", type=float, default=None, help="mixtures' tolerance (default: mclust's rule)")
    parser.add_argument("--max-iter", type=int, default=1000, help="mixtures' most iterations per fit (default 1000)")
    parser.add_argument("--init", default="hc", help="mixtures' initialisation (default hc, mclust's start)")
    parser.add_argument("--skip-mclust", action="store_true", help="run mixtures only")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before mclust is stopped")
    parser.add_argument("--out", default="bench_models.json", help="JSON file (default bench_models.json)")
    args = parser.parse_args(argv)
    first, last = (int(v) for v in args.ks.split("-"))
    ks = list(range(first, last + 1))
    x = make_data(args.n, args.d)
    if args.tol is None:
        args.tol = mclust_tolerance(x)
    print(f"{len(mx.Gaussian.MODELS)} models × K = {first}..{last} on {args.n} × {args.d} rows, "
          f"mixtures' tol {args.tol:.3g}", flush=True)

    rows = {}
    for name, dtype in (("mixtures-f32", np.float32), ("mixtures-f64", np.float64)):
        rows[name] = run_mixtures(x, ks, dtype, args.tol, args.max_iter, args.init)
        print(f"  {name} done: {rows[name]['seconds']:.1f} s", flush=True)
    if not args.skip_mclust:
        rows["mclust"] = run_mclust(x, ks, args.timeout)
        rows["mclust"]["compile"] = None

    print(f"\n{'':14s}{'seconds':>9s}{'compile':>9s}{'×mclust':>9s}  best   K  {'BIC (mclust sign)':>18s}  converged")
    for name, row in rows.items():
        compile_s = "" if row.get("compile") is None else f"{row['compile']:.1f}"
        speed = "" if "mclust" not in rows or name == "mclust" else f"{rows['mclust']['seconds'] / row['seconds']:.1f}"
        fitted = row.get("n_converged", row.get("n_fitted"))
        print(
            f"{name:14s}{row['seconds']:9.1f}{compile_s:>9s}{speed:>9s}  {row['model']}  {row['K']:2d}  "
            f"{row['bic']:18.2f}  {fitted}/{row['n_cells']}"
        )
    with open(args.out, "w") as f:
        json.dump({"n": args.n, "d": args.d, "ks": ks, "tol": args.tol, "rows": rows, "python": sys.version}, f, indent=1)


if __name__ == "__main__":
    main()
