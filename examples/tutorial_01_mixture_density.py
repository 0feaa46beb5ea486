"""Tutorial 1: a mixture density is a weighted sum of component densities.

Builds a three-component Gaussian mixture on the real line by hand,
p(x) = Σₖ πₖ N(x | μₖ, σₖ²), evaluates it with ``Mixture.log_prob`` and by
the formula, checks that it integrates to one, and draws from it by the
generative process (pick k with probability πₖ, then draw x from component k).

Writes tutorial_01_mixture_density.png into the output directory.
Run: python examples/tutorial_01_mixture_density.py [output directory, default docs/figures]
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
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([-2.0, 1.0, 4.0])
STDS = np.array([0.8, 1.2, 0.6])
N_DRAWS = 2000


def normal_pdf(x, mean, std):
    """N(x | mean, std²), by the formula."""
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def main(out_dir=FIGURES):
    family = mx.Gaussian("spherical")  # in one dimension every covariance type is a variance
    mixture = mx.Mixture(WEIGHTS, family.make_params(MEANS[:, None], STDS**2), family)

    grid = np.linspace(-6.0, 8.0, 1401)
    density = np.exp(np.asarray(mixture.log_prob(grid[:, None])))
    parts = WEIGHTS * normal_pdf(grid[:, None], MEANS, STDS)  # (G, K): πₖ N(x | μₖ, σₖ²)
    by_hand = parts.sum(axis=1)
    integral = float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(grid)))

    x, z = mixture.sample(N_DRAWS, key=jax.random.key(0))
    x, z = np.asarray(x)[:, 0], np.asarray(z)
    fractions = np.bincount(z, minlength=3) / N_DRAWS

    at_zero = float(np.exp(mixture.log_prob(np.zeros((1, 1))))[0])
    print("p(x) = 0.5 N(x | -2, 0.8²) + 0.3 N(x | 1, 1.2²) + 0.2 N(x | 4, 0.6²)")
    print(f"p(0) from Mixture.log_prob: {at_zero:.6f}; by the formula: {float(normal_pdf(0.0, MEANS, STDS) @ WEIGHTS):.6f}")
    print(f"largest difference on the grid between the two: {np.max(np.abs(density - by_hand)):.1e}")
    print(f"∫ p(x) dx over [-6, 8] (trapezoid rule): {integral:.6f}")
    print(f"fraction of {N_DRAWS} draws per component: {fractions.round(3).tolist()} (weights {WEIGHTS.tolist()})")

    colors = plot.component_colors(3)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for k in range(3):
        left.fill_between(grid, parts[:, k], color=colors[k], alpha=0.3)
        left.plot(grid, parts[:, k], color=colors[k], label=rf"$\pi_{k + 1}\,\mathcal{{N}}(x \mid \mu_{k + 1}, \sigma_{k + 1}^2)$, $\pi_{k + 1}$ = {WEIGHTS[k]}")
    left.plot(grid, density, color="k", linewidth=2, label="$p(x)$, their sum")
    left.set_title("The mixture density and its weighted components")
    left.set_xlabel("x")
    left.set_ylabel("density")
    left.legend(fontsize="small", loc="upper right")

    bins = np.linspace(-6.0, 8.0, 57)
    right.hist([x[z == k] for k in range(3)], bins=bins, stacked=True, density=True, color=colors,
               label=[f"drawn from component {k + 1}" for k in range(3)])
    right.plot(grid, density, color="k", linewidth=2, label="$p(x)$")
    right.set_title(rf"{N_DRAWS} draws: $z \sim$ Categorical($\pi$), then $x \sim$ component $z$")
    right.set_xlabel("x")
    right.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_01_mixture_density.png")
    print(f"wrote {out}")
    return {
        "grid": grid,
        "density": density,
        "by_hand": by_hand,
        "integral": integral,
        "at_zero": at_zero,
        "fractions": fractions,
        "figure": out,
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
