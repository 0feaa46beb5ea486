"""Tutorial 2: the same two Gaussians under different mixing weights π.

Two unit-variance Gaussians at μ₁ = −1.5 and μ₂ = 1.5, mixed with
π₁ = 0.5, 0.8 and 0.2. The weights change the shape of p(x) and move the
point where the two components are equally responsible for x: there
π₁ N(x | μ₁, σ²) = π₂ N(x | μ₂, σ²), which solves to
x* = (μ₁ + μ₂)/2 + σ² log(π₁/π₂) / (μ₂ − μ₁). The script prints x* from that
formula and the responsibilities ``Mixture.responsibilities`` gives there.

Writes tutorial_02_weights.png into the output directory.
Run: python examples/tutorial_02_weights.py [output directory, default docs/figures]
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
MEANS = np.array([-1.5, 1.5])
STD = 1.0
FIRST_WEIGHTS = (0.5, 0.8, 0.2)


def boundary(pi_1):
    """The x where π₁ N(x | μ₁, σ²) = π₂ N(x | μ₂, σ²), by the closed form."""
    return MEANS.mean() + STD**2 * np.log(pi_1 / (1 - pi_1)) / (MEANS[1] - MEANS[0])


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def main(out_dir=FIGURES):
    family = mx.Gaussian("spherical")
    params = family.make_params(MEANS[:, None], np.full(2, STD**2))
    grid = np.linspace(-5.0, 5.0, 501)
    colors = plot.component_colors(2)

    fig, axes = plt.subplots(2, 3, figsize=(10, 5.4), sharex=True, sharey="row",
                             gridspec_kw={"height_ratios": [3, 2]})
    boundaries, at_boundary = [], []
    print("μ = (-1.5, 1.5), σ = 1; x* is where both components are equally responsible")
    for column, pi_1 in enumerate(FIRST_WEIGHTS):
        weights = np.array([pi_1, 1 - pi_1])
        mixture = mx.Mixture(weights, params, family)
        x_star = boundary(pi_1)
        points = np.append(grid, x_star)[:, None]  # one call: the grid, then x*
        density = np.exp(np.asarray(mixture.log_prob(points)))
        resp = np.asarray(mixture.responsibilities(points))
        component = np.exp(np.asarray(family.log_prob_components(params, points)))  # (G + 1, 2)
        boundaries.append(float(x_star))
        at_boundary.append(resp[-1].tolist())
        print(f"π = ({pi_1}, {1 - pi_1:.1f}): x* = {x_star:+.4f}; responsibilities at x*: {resp[-1].round(12).tolist()}; "
              f"p(x*) = {density[-1]:.4f}")

        top, bottom = axes[0, column], axes[1, column]
        for k in range(2):
            top.plot(grid, weights[k] * component[:-1, k], color=colors[k], linestyle="--",
                     label=rf"$\pi_{k + 1}\,\mathcal{{N}}(x \mid \mu_{k + 1}, 1)$")
            bottom.plot(grid, resp[:-1, k], color=colors[k], label=rf"$r_{k + 1}(x)$")
        top.plot(grid, density[:-1], color="k", linewidth=2, label="$p(x)$")
        top.set_title(rf"$\pi$ = ({pi_1}, {1 - pi_1:.1f})")
        for ax in (top, bottom):
            ax.axvline(x_star, color="0.4", linewidth=0.8, linestyle=":")
        bottom.annotate(rf"$x^*$ = {x_star:+.2f}", (x_star, 0.5), xytext=(6, 0), textcoords="offset points",
                        fontsize="small", va="center")
        bottom.set_xlabel("x")
    axes[0, 0].set_ylabel("density")
    axes[1, 0].set_ylabel("responsibility")
    axes[0, 0].legend(fontsize="small", loc="upper left")
    axes[1, 0].legend(fontsize="small", loc="center left")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_02_weights.png")
    print(f"wrote {out}")
    return {"boundaries": boundaries, "responsibilities_at_boundaries": at_boundary, "figure": out}


if __name__ == "__main__":
    main(*sys.argv[1:])
