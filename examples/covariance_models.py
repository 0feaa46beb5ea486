"""mclust's fourteen covariance models fitted to one 2-D data set.

Three clusters that differ in volume, shape and orientation (a large round
one, a long one leaning at 30°, a small one leaning the other way): each of
the fourteen models, Σₖ = λₖ Dₖ Aₖ Dₖᵀ with the volume λₖ, shape Aₖ and
orientation Dₖ Equal across components, Variable or the Identity, is fitted
with K = 3 from the same start (``init="hc"``, mclust's hierarchical one),
and drawn as its 1- and 2-standard-deviation ellipses with its BIC. Only
the models that let volume, shape and orientation vary where the clusters
do can follow all three; the others show what their constraints give up.

Writes covariance_models.png into the output directory and prints the models'
BIC and log-likelihood, lowest BIC first.
Run: python examples/covariance_models.py [output directory, default docs/figures]
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
K = 3


def three_clusters(seed=0):
    """A large round cluster, a long one at 30° and a small one at −20°: 300 rows."""
    rng = np.random.default_rng(seed)

    def cluster(n, centre, sds, degrees):
        angle = np.deg2rad(degrees)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return centre + (rng.standard_normal((n, 2)) * sds) @ rotation.T

    return np.concatenate(
        [
            cluster(120, np.array([0.0, 0.0]), np.array([1.6, 1.6]), 0.0),
            cluster(120, np.array([6.0, 4.0]), np.array([2.2, 0.35]), 30.0),
            cluster(60, np.array([5.5, -3.0]), np.array([0.9, 0.2]), -20.0),
        ]
    )


def main(out=FIGURES):
    """Fits the fourteen models; returns {model: (BIC, mixture, mean log-likelihood)} and writes the figure into ``out``."""
    x = three_clusters()
    fits = {}
    for model in mx.Gaussian.MODELS:
        result = mx.fit(x, mx.Gaussian(model), K, key=jax.random.key(0), init="hc", tol=1e-8, max_iter=1000)
        fits[model] = (float(result.mixture.bic(x)), result.mixture, float(result.log_likelihood))

    print("model    BIC     log-likelihood per row")
    for model, (bic, _, ll) in sorted(fits.items(), key=lambda item: item[1][0]):
        print(f"{model}  {bic:8.1f}  {ll:10.4f}")

    fig, axes = plt.subplots(4, 4, figsize=(12, 12), sharex=True, sharey=True)
    for ax in axes.flat[len(fits):]:
        ax.axis("off")
    for ax, (model, (bic, mixture, _)) in zip(axes.flat, fits.items()):
        ax.scatter(x[:, 0], x[:, 1], s=3, color="0.6")
        mx.plot.ellipses(mixture, ax=ax)
        ax.set_title(f"{model}   BIC {bic:.0f}", fontsize=10)
        ax.set_aspect("equal")
    fig.suptitle("mclust's fourteen covariance models, K = 3 (lower BIC is better)")
    fig.tight_layout()
    Path(out).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out) / "covariance_models.png", dpi=100)
    plt.close(fig)
    return fits


if __name__ == "__main__":
    main(*sys.argv[1:])
