"""Tutorial 6: elliptical versus spherical clusters: the four covariance types.

Fits two-component Gaussian mixtures to the Old Faithful data with full,
tied, diagonal and spherical covariances and compares their shapes,
log-likelihoods, numbers of free parameters and BIC. All four start from
the same split of the data (eruptions shorter or longer than 3 minutes), so
they differ only in the covariance model. The two columns are in minutes
but on very different scales (eruptions last 1.6–5.1 minutes, the waits are
43–96 minutes), which a spherical component cannot follow.

Writes tutorial_06_covariance.png into the output directory.
Run: python examples/tutorial_06_covariance.py [output directory, default docs/figures]
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
COVARIANCES = ("full", "tied", "diag", "spherical")
SPLIT = 3.0  # minutes: the start puts shorter eruptions in component 1, longer ones in component 2


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def start(x, covariance):
    """A warm start: each half of the split's weight, mean and covariance, in the layout of ``covariance``."""
    halves = [x[x[:, 0] < SPLIT], x[x[:, 0] >= SPLIT]]
    weights = np.array([len(h) for h in halves]) / len(x)
    means = np.stack([h.mean(axis=0) for h in halves])
    full = np.stack([np.cov(h.T, bias=True) for h in halves])
    covariances = {
        "full": full,
        "tied": np.einsum("k,kij->ij", weights, full),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance]
    family = mx.Gaussian(covariance)
    return mx.Mixture(weights, family.make_params(means, covariances), family)


def main(out_dir=FIGURES):
    x = mx.datasets.load_old_faithful()
    fits = {}
    print("covariance  log-lik/sample  parameters      BIC  iterations")
    first_covariances = {}
    for covariance in COVARIANCES:
        result = mx.fit(x, mx.Gaussian(covariance), 2, key=None, init=start(x, covariance), tol=1e-8)
        m = result.mixture
        first = int(np.argmin(np.asarray(m.params.means)[:, 0]))
        fits[covariance] = {
            "mixture": m,
            "log_likelihood": float(result.log_likelihood),
            "n_parameters": m.n_parameters,
            "bic": float(m.bic(x)),
        }
        first_covariances[covariance] = np.asarray(m.params.covariances)[first].round(3).tolist()
        print(f"{covariance:>10}  {float(result.log_likelihood):14.4f}  {m.n_parameters:10d}  {fits[covariance]['bic']:7.1f}"
              f"  {int(result.n_iter):10d}")
    print("covariance of the first component (the short eruptions):")
    for covariance, shown in first_covariances.items():
        print(f"{covariance:>10}  {shown}")

    full = fits["full"]["mixture"]
    order = np.argsort(np.asarray(full.params.means)[:, 0])
    covariances = np.asarray(full.params.covariances)[order]
    correlations = [c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]) for c in covariances]
    print(f"full, long eruptions: {covariances[1].round(3).tolist()}")
    print(f"full, correlations of the short and long eruptions: {correlations[0]:.2f} and {correlations[1]:.2f}")

    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6), sharex=True, sharey=True)
    for ax, covariance in zip(axes, COVARIANCES):
        entry = fits[covariance]
        plot.fit_summary(entry["mixture"], x, ax=ax, grid=120)
        ax.set_title(f'"{covariance}": {entry["n_parameters"]} parameters, BIC {entry["bic"]:.0f}', fontsize="medium")
        ax.set_xlabel("eruption length (min)")
    axes[0].set_ylabel("waiting time (min)")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_06_covariance.png")
    print(f"wrote {out}")
    return {"x": x, "fits": fits, "figure": out}


if __name__ == "__main__":
    main(*sys.argv[1:])
