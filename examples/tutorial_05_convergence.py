"""Tutorial 5: convergence: the log-likelihood never decreases, and where EM stops.

Fits two-component Gaussian mixtures to the Old Faithful data from starts at
random rows (``init="random_from_data"``) with a very small ``tol`` and
collects every iteration of every restart through ``fit(callback=...)``. It checks that no
iteration lowered the mean log-likelihood, estimates the rate at which the
gap to the final value shrinks, shows where scikit-learn's default ``tol=1e-3`` stops,
and fits three components from the same kind of starts to show that a
non-decreasing log-likelihood still ends at a local maximum.

Writes tutorial_05_convergence.png into the output directory.
Run: python examples/tutorial_05_convergence.py [output directory, default docs/figures]
"""

import io
import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

import mixtures as mx  # noqa: E402
from mixtures import plot  # noqa: E402

jax.config.update("jax_enable_x64", True)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
N_INIT = 6
TOL = 1e-10
MAX_ITER = 400
INIT = "random_from_data"


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def histories(reports):
    """The callback's reports as one NaN-padded row per restart."""
    table = np.full((max(p.restart for p in reports) + 1, max(p.iteration for p in reports)), np.nan)
    for p in reports:
        table[p.restart, p.iteration - 1] = p.log_likelihood
    return table


def fit(x, k, tol, reports):
    return mx.fit(x, mx.Gaussian("full"), k, key=jax.random.key(1), init=INIT, n_init=N_INIT,
                  tol=tol, max_iter=MAX_ITER, callback=reports.append)


def main(out_dir=FIGURES):
    x = mx.datasets.load_old_faithful()

    reports = []
    result = fit(x, 2, TOL, reports)
    table = histories(reports)
    steps = np.diff(table, axis=1)
    finals = np.asarray(result.all_log_likelihoods)
    # The slowest of the restarts that reached the best value shows the convergence rate best.
    shown = int(np.argmax(np.where(finals > finals.max() - 1e-8, np.asarray(result.all_n_iter), -1)))
    history = table[shown][np.isfinite(table[shown])]
    final = float(finals[shown])
    gap = final - history
    tail = (gap < 1e-3) & (gap > 1e-9)  # the last phase, before rounding errors
    rate = float(np.exp(np.polyfit(np.flatnonzero(tail), np.log(gap[tail]), 1)[0]))

    print(f"K = 2, {N_INIT} starts from random rows, tol = {TOL:g}:")
    print(f"  iterations per restart: {np.asarray(result.all_n_iter).tolist()}; "
          f"all converged: {bool(np.all(result.all_converged))}")
    print("  final mean log-likelihoods:")
    print(f"    {finals.round(6).tolist()}")
    print(f"  {int(np.sum(np.isfinite(table)))} iterations in all, {int(np.sum(np.isfinite(steps)))} changes between "
          f"consecutive ones; the smallest: {np.nanmin(steps):.1e}")
    print(f"  restart {shown}, the slowest, from its start:")
    print("    " + " ".join(f"{v:.4f}" for v in history[:10]) + " ...")
    print(f"  its gap to the final value shrinks by a factor {rate:.3f} per iteration")

    quick_reports = []
    quick = fit(x, 2, 1e-3, quick_reports)
    short = np.asarray(quick.all_log_likelihoods)
    counts = np.asarray(quick.all_n_iter).tolist()
    print(f"with scikit-learn's default tol = 1e-3 (same starts): iterations {counts}")
    print(f"  largest shortfall below the tol = {TOL:g} values: {np.max(finals - short):.1e}")

    reports_3 = []
    three = fit(x, 3, TOL, reports_3)
    finals_3 = np.asarray(three.all_log_likelihoods)
    table_3 = histories(reports_3)
    print(f"K = 3, {N_INIT} starts from random rows: smallest change {np.nanmin(np.diff(table_3, axis=1)):.1e}")
    print(f"  final mean log-likelihoods: {np.sort(finals_3)[::-1].round(4).tolist()}")

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(11, 3.8))
    plot.history(reports, ax=left)
    left.set_title(f"K = 2: {N_INIT} starts from random rows")
    left.set_xscale("log")
    middle.semilogy(np.arange(1, len(gap) + 1)[gap > 0], gap[gap > 0], ".-", color="C0",
                    label="gap to the final value")
    middle.semilogy(np.arange(2, len(history) + 1), np.maximum(np.diff(history), 1e-16), ".", color="C1",
                    markersize=3, label="change since the previous iteration")
    middle.axhline(1e-3, color="0.4", linestyle=":", linewidth=1)
    middle.annotate("scikit-learn's default tol = 1e-3", (1, 1.5e-3), fontsize="small", color="0.3")
    middle.set_title(f"K = 2, restart {shown}: gap × {rate:.2f} per iteration")
    middle.set_xlabel("EM iteration")
    middle.set_ylabel("mean log-likelihood difference")
    middle.legend(fontsize="small", loc="lower left")
    plot.history(reports_3, ax=right)
    right.set_xscale("log")
    right.set_title(f"K = 3: {len(np.unique(finals_3.round(4)))} different local maxima")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_05_convergence.png")
    print(f"wrote {out}")
    return {
        "result": result,
        "histories": table,
        "histories_3": table_3,
        "rate": rate,
        "quick": quick,
        "finals_3": finals_3,
        "figure": out,
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
