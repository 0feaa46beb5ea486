"""Old Faithful fitted with more components than it needs: variational Bayes switches the extra ones off.

For K_max = 2, 4, 8 and 16, a full-covariance Gaussian mixture is fitted two
ways, each the best of 8 restarts:

- ``mx.fit_variational`` with a stick-breaking (Dirichlet-process) prior on
  the weights, γ = 1/K_max, and the default normal–Wishart prior: components
  the data do not need end with expected counts near zero;
- ``mx.fit`` by maximum likelihood: every one of the K_max components takes
  some of the data.

Writes variational.png into the output directory: each fit's components with
weight above 1% as 1- and 2-standard-deviation ellipses (variational Bayes
on top, maximum likelihood beneath), and the weights of all K_max
components. Prints, per K_max, the number of components each fit uses, the
ELBO per row, and the variational fit's posterior-predictive log-density per
row on the data.
Run: python examples/variational.py [output directory, default docs/figures]
"""

import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

import mixtures as mx  # noqa: E402
import mixtures.plot  # noqa: E402,F401  (mx.plot)

jax.config.update("jax_enable_x64", True)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
K_MAX = (2, 4, 8, 16)
USED = 0.01  # a component "is used" above this weight


def used(mixture):
    """The mixture's components of weight above USED, as a smaller mixture (weights as they are)."""
    keep = np.flatnonzero(np.asarray(mixture.weights) > USED)
    return mx.Mixture(mixture.weights[keep], jax.tree.map(lambda a: a[keep], mixture.params), mixture.family)


def fit_both(x, k, key):
    """(variational result, maximum-likelihood result) for K_max = k, each the best of 8 restarts."""
    vb = mx.fit_variational(x, mx.Gaussian("full"), k, key=key, n_init=8, max_iter=500, tol=1e-8)
    ml = mx.fit(x, mx.Gaussian("full"), k, key=key, n_init=8, max_iter=500, tol=1e-8)
    return vb, ml


def draw(x, fits, out):
    fig, axes = plt.subplots(3, len(fits), figsize=(3.3 * len(fits), 9.0),
                             gridspec_kw={"height_ratios": [1.0, 1.0, 0.55]})
    for column, (k, (vb, ml)) in enumerate(fits.items()):
        for row, (name, mixture) in enumerate((("variational Bayes", vb.mixture), ("maximum likelihood", ml.mixture))):
            ax = axes[row, column]
            ax.scatter(*x.T, s=5, color="0.35", zorder=3)
            shown = used(mixture)
            mx.plot.ellipses(shown, ax=ax, alpha=0.15, linewidth=1.3)
            ax.set_title(f"{name}, K_max = {k}: {shown.n_components} used", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[2, column]
        positions = np.arange(k)
        ax.set_xticks(positions if k <= 8 else positions[::5])
        ax.bar(positions - 0.2, np.sort(np.asarray(vb.mixture.weights))[::-1], width=0.4, label="variational Bayes")
        ax.bar(positions + 0.2, np.sort(np.asarray(ml.mixture.weights))[::-1], width=0.4, label="maximum likelihood")
        ax.axhline(USED, color="0.5", linewidth=0.7, linestyle=":")
        ax.set_yscale("log")
        ax.set_ylim(1e-5, 1.0)
        ax.set_xlabel("component, by weight", fontsize=8)
        if column == 0:
            ax.set_ylabel("weight")
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Old Faithful, full covariances: components above 1% weight (ellipses at 1 and 2 sd)", fontsize=10)
    fig.tight_layout()
    Path(out).mkdir(parents=True, exist_ok=True)
    figure = Path(out) / "variational.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    return figure


def main(out=FIGURES):
    """Fits every K_max both ways; returns the fits and the figure's path."""
    x = np.asarray(mx.datasets.load_old_faithful())
    fits = {k: fit_both(x, k, jax.random.key(0)) for k in K_MAX}
    print("K_max   used (VB)   used (ML)   ELBO/row   predictive log-density/row   ML log-likelihood/row")
    for k, (vb, ml) in fits.items():
        predictive = float(np.mean(vb.posterior.log_prob(x)))
        print(f"{k:5d} {used(vb.mixture).n_components:11d} {used(ml.mixture).n_components:11d} "
              f"{float(vb.elbo):10.4f} {predictive:28.4f} {float(ml.log_likelihood):23.4f}")
    return {"x": x, "fits": fits, "figure": draw(x, fits, out)}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else FIGURES)
