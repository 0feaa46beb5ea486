"""Old Faithful with 30% of its entries removed, fitted by EM on the observed entries.

A seeded 30% of the 544 entries (eruption length, waiting time) are set to NaN,
at most one per row so that every row keeps an entry: 163 of the 272 rows lose
one value, missing completely at random. ``mx.fit(..., missing="marginalize")``
fits K = 2 full-covariance Gaussians to what is left, each row by its observed
entries; the same model is fitted to the complete data for comparison. The
fitted mixture then fills in each missing entry with its conditional mean
given the row's observed entry (``mixture.impute``), which is compared with
the removed values and with filling in the column's mean. Last, waiting times
are removed more often after long eruptions (missing at random, not completely
at random), and the fit on the observed entries is compared with dropping the
incomplete rows and with filling in the column mean.

Writes missing_values.png into the output directory: both fits' 1- and
2-standard-deviation ellipses, the complete rows, the incomplete rows at their
imputed positions and a line from each to the value that was removed. Prints
the two fits' log-likelihoods and means, the imputation errors, and the weights
and means of each way of fitting the data missing at random.
Run: python examples/missing_values.py [output directory, default docs/figures]
"""

import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import mixtures as mx  # noqa: E402
import mixtures.plot  # noqa: E402,F401  (mx.plot)

jax.config.update("jax_enable_x64", True)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
K = 2
FRACTION = 0.3
COLUMNS = ("eruption length", "waiting time")


def remove_entries(x, fraction=FRACTION, seed=0):
    """A copy of ``x`` (two columns) with ``fraction`` of its entries set to NaN, at most one per row."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    rows = rng.choice(n, size=round(fraction * n * d), replace=False)
    holes = x.copy()
    holes[rows, rng.integers(0, d, size=rows.size)] = np.nan
    return holes


def rmse(filled, x, missing):
    """Root-mean-square error of ``filled`` against ``x`` over the missing entries, per column."""
    squares = np.where(missing, filled - x, 0.0) ** 2
    return np.sqrt(squares.sum(axis=0) / missing.sum(axis=0))


def by_eruption(mixture):
    """The mixture's means, shortest eruption first (the two fits label their components differently)."""
    means = np.asarray(mixture.params.means)
    return means[np.argsort(means[:, 0])]


def matched_colors(mixture):
    """Each component's colour by its rank in eruption length: matching components of two fits share one."""
    palette = mx.plot.component_colors(K)
    return [palette[rank] for rank in np.argsort(np.argsort(np.asarray(mixture.params.means)[:, 0]))]


def draw(x, imputed, incomplete, full, fit, out):
    """Both fits' ellipses, the complete rows, the incomplete rows where they are imputed and the removed values."""
    fig, ax = plt.subplots(figsize=(7.5, 5.6))
    mx.plot.ellipses(full, ax=ax, colors=matched_colors(full), fill=False, linestyle="--", linewidth=1.3)
    mx.plot.ellipses(fit, ax=ax, colors=matched_colors(fit), alpha=0.12, linewidth=1.8)
    errors = np.stack([imputed[incomplete], x[incomplete]], axis=1)  # a segment per incomplete row
    ax.add_collection(LineCollection(errors, colors="0.35", linewidths=0.7, alpha=0.6, zorder=2))
    ax.scatter(*x[~incomplete].T, s=12, color="0.25", zorder=3)
    imputed_style = {"facecolors": "white", "edgecolors": "crimson", "linewidths": 1.1}
    ax.scatter(*imputed[incomplete].T, s=26, zorder=4, **imputed_style)
    legend = [
        Line2D([], [], color="0.3", linestyle="--", label="fit to the complete data"),
        Line2D([], [], color="0.3", linewidth=1.8, label='fit with 30% removed, missing="marginalize"'),
        Line2D([], [], marker="o", linestyle="", markersize=4, color="0.25", label="complete row"),
        Line2D([], [], marker="o", linestyle="", markersize=6, markerfacecolor="white", markeredgecolor="crimson",
               label="incomplete row, imputed (conditional mean)"),
        Line2D([], [], color="0.35", linewidth=0.7, label="to the value removed"),
    ]
    ax.legend(handles=legend, loc="upper left", fontsize=8.5, framealpha=0.9)
    ax.set_xlabel(f"{COLUMNS[0]} (minutes)")
    ax.set_ylabel(f"{COLUMNS[1]} (minutes)")
    ax.set_title("Old Faithful with 30% of its entries removed: K = 2, ellipses at 1 and 2 standard deviations",
                 fontsize=10)
    fig.tight_layout()
    Path(out).mkdir(parents=True, exist_ok=True)
    figure = Path(out) / "missing_values.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    return figure


def main(out=FIGURES):
    """Fits both; returns the data, fits and errors, and writes the figure into ``out``."""
    x = mx.datasets.load_old_faithful()
    holes = remove_entries(x)
    missing = np.isnan(holes)
    incomplete = missing.any(axis=1)
    print(f"{missing.sum()} of {x.size} entries removed ({missing.mean():.0%}): "
          f"{missing[:, 0].sum()} eruption lengths, {missing[:, 1].sum()} waiting times")
    print(f"{incomplete.sum()} of {len(x)} rows incomplete, {(~incomplete).sum()} complete")

    full = mx.fit(x, mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8)
    fit = mx.fit(holes, mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8, missing="marginalize")
    m = fit.mixture
    print("log-likelihood per row")
    print(f"  complete-data fit, on the complete data     {float(full.log_likelihood):8.4f}")
    print(f"  observed-data fit, on the observed entries  {float(fit.log_likelihood):8.4f}")
    print(f"  observed-data fit, on the complete data     {float(m.score(x)):8.4f}")
    print("means (eruption, waiting), shorter eruptions first")
    for name, mixture in (("complete-data fit", full.mixture), ("observed-data fit", m)):
        print(f"  {name}   " + "  ".join(f"({a:.2f}, {b:.1f})" for a, b in by_eruption(mixture)))

    imputed = np.asarray(m.impute(holes))
    column_means = np.nanmean(holes, axis=0)
    errors = {
        "mixture, conditional mean": rmse(imputed, x, missing),
        "column mean": rmse(np.where(missing, column_means, holes), x, missing),
    }
    print("imputation RMSE against the values removed   eruption (min)   waiting (min)")
    for name, error in errors.items():
        print(f"  {name:<42} {error[0]:14.2f}  {error[1]:13.1f}")

    figure = draw(x, imputed, incomplete, full.mixture, m, out)
    at_random = missing_at_random(x)
    return {"x": x, "holes": holes, "full": full, "fit": fit, "imputed": imputed, "errors": errors,
            "missing_at_random": at_random, "figure": figure}


def missing_at_random(x, seed=0):
    """Waiting times removed more often after long eruptions: three ways of fitting what is left.

    The chance that a row's waiting time is missing depends on its eruption length,
    which is observed: missing at random, not completely at random. Dropping the
    incomplete rows loses long eruptions preferentially, filling in the column mean
    pulls their waiting times down; the fit on the observed entries is the
    maximum-likelihood fit under this mechanism.
    """
    rng = np.random.default_rng(seed)
    holes = x.copy()
    gone = (x[:, 0] > 3.0) & (rng.random(len(x)) < 0.7)
    holes[gone, 1] = np.nan
    filled = np.where(np.isnan(holes), np.nanmean(holes, axis=0), holes)
    fits = {
        "complete data": mx.fit(x, mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8),
        "incomplete rows dropped": mx.fit(x[~gone], mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8),
        "column mean filled in": mx.fit(filled, mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8),
        'missing="marginalize"': mx.fit(holes, mx.Gaussian("full"), K, key=jax.random.key(0), tol=1e-8,
                                        missing="marginalize"),
    }
    print(f"\nmissing at random: {gone.sum()} waiting times removed, from 70% of the eruptions over 3 min")
    print("                            weights         means (eruption, waiting)")
    for name, result in fits.items():
        order = np.argsort(np.asarray(result.mixture.params.means)[:, 0])
        weights = np.asarray(result.mixture.weights)[order]
        means = by_eruption(result.mixture)
        print(f"  {name:<24}  {weights[0]:.3f}  {weights[1]:.3f}  "
              + "  ".join(f"({a:.2f}, {b:.1f})" for a, b in means))
    return fits


if __name__ == "__main__":
    main(*sys.argv[1:])
