"""Restarts and model selection: how often one EM start is not enough, and BIC versus K.

1. Nine small, well-separated clusters on a 3 × 3 grid: 20 restarts of a
   9-component fit, from K random rows ("random_from_data") and from
   k-means++ seeding, and how often a single start ends in a worse optimum
   than the best of the 20 (``FitResult.all_log_likelihoods``).
2. Old Faithful: BIC, AIC and ICL for K = 1…6 and the four Gaussian
   covariance types, all from one call of ``select``.

Writes restarts.png and bic_old_faithful.png into the output directory.
Run: python examples/model_selection.py [output directory, default docs/figures]
"""

import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

import mixtures as mx  # noqa: E402
from mixtures import select  # noqa: E402

jax.config.update("jax_enable_x64", True)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
COVARIANCES = ("full", "tied", "diag", "spherical")
N_RESTARTS = 20
WORSE = 1e-3  # a restart is in a worse optimum if its mean log-likelihood is this much below the best


def grid_clusters(seed=0, per_cluster=50, spacing=10.0):
    """Nine unit-variance clusters centred on a 3 × 3 grid."""
    rng = np.random.default_rng(seed)
    centres = spacing * np.array([(i, j) for i in range(3) for j in range(3)], dtype=np.float64)
    return np.repeat(centres, per_cluster, axis=0) + rng.standard_normal((9 * per_cluster, 2))


def restarts(x, out):
    """Final log-likelihoods of 20 restarts per seeding; draws them into ``out``/restarts.png."""
    print(f"1. Restarts: {x.shape[0]} points in 9 separated clusters, K = 9, Gaussian('full')")
    finals = {}
    for init in ("random_from_data", "kmeans++"):
        result = mx.fit(x, mx.Gaussian("full"), 9, key=jax.random.key(0), init=init, n_init=N_RESTARTS, max_iter=200)
        lls = np.asarray(result.all_log_likelihoods)
        best = lls.max()
        worse = lls < best - WORSE
        finals[init] = lls
        print(
            f"   init={init!r:>18}: best-of-{N_RESTARTS} log-likelihood {best:.4f} per sample; "
            f"{worse.sum()}/{N_RESTARTS} single starts ({worse.mean():.0%}) end in a worse optimum, "
            f"median gap {np.median(best - lls):.4f}, worst gap {np.max(best - lls):.4f}"
        )
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    top = max(v.max() for v in finals.values())
    bins = np.linspace(min(v.min() for v in finals.values()) - 0.01, top + 0.01, 25)
    ax.hist(list(finals.values()), bins=bins, color=["tab:orange", "tab:blue"], label=[f"init={k!r}" for k in finals])
    ax.axvline(top, color="black", linestyle="--", linewidth=1, label="best of all restarts")
    ax.set_xlabel("final mean log-likelihood per sample")
    ax.set_ylabel(f"restarts (of {N_RESTARTS} per method)")
    ax.set_title("9 separated clusters, K = 9: where single EM starts end")
    ax.legend(loc="upper left", frameon=False)
    fig.savefig(out / "restarts.png", dpi=120)
    plt.close(fig)


def bic_versus_k(x, out):
    """BIC, AIC and ICL for K = 1..6 and four covariance types; draws BIC into ``out``/bic_old_faithful.png."""
    print("\n2. Old Faithful: criteria for K = 1..6 and four covariance types (5 restarts each, k-means++)")
    families = [mx.Gaussian(c) for c in COVARIANCES]
    s = select(x, families, range(1, 7), key=jax.random.key(0), n_init=5, tol=1e-6, max_iter=500)
    print(f"   {'covariance':>10} {'K':>2} {'log-likelihood':>14} {'p':>3} {'BIC':>9} {'AIC':>9} {'ICL':>9}")
    for row in s.table:
        print(
            f"   {row['family'].covariance:>10} {row['n_components']:>2} {row['log_likelihood']:>14.4f} "
            f"{row['n_parameters']:>3} {row['bic']:>9.2f} {row['aic']:>9.2f} {row['icl']:>9.2f}"
        )
    for criterion in ("bic", "aic", "icl"):
        best = min(s.table, key=lambda row: row[criterion])
        print(f"   lowest {criterion.upper()}: {best['family'].covariance}, K = {best['n_components']} ({best[criterion]:.2f})")
    chosen = min(s.table, key=lambda row: row["bic"])
    r = np.asarray(s.best.mixture.responsibilities(x))
    print(f"   hard-cluster sizes of the BIC choice: {np.bincount(r.argmax(axis=1)).tolist()}")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for ax, zoom in zip(axes, (False, True)):
        for covariance, marker in zip(COVARIANCES, "osD^"):
            rows = [row for row in s.table if row["family"].covariance == covariance]
            ax.plot([r["n_components"] for r in rows], [r["bic"] for r in rows], marker=marker, label=covariance)
        ax.plot([chosen["n_components"]], [chosen["bic"]], "k*", markersize=15,
                label=f"lowest: {chosen['family'].covariance}, K = {chosen['n_components']}")
        ax.set_xlabel("number of components K")
        ax.set_ylabel("BIC (lower is better)")
    axes[0].set_title("Old Faithful: BIC versus K (full and tied coincide at K = 1)")
    axes[1].set_ylim(2300, 2400)
    axes[1].set_xlim(1.7, 6.3)
    axes[1].set_title("zoom on K ≥ 2 (spherical is off the scale)")
    axes[0].legend(frameon=False)
    fig.savefig(out / "bic_old_faithful.png", dpi=120)
    plt.close(fig)


def main(out_dir=FIGURES):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    restarts(grid_clusters(), out)
    bic_versus_k(mx.datasets.load_old_faithful(), out)
    print(f"\nfigures written to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
