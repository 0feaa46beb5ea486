"""Tutorial 3: responsibilities, soft clustering and hard clustering.

Draws 400 points from a known two-component Gaussian mixture whose
components overlap, fits a two-component mixture with ``mx.fit``, and
compares the soft clustering (the responsibilities rₙₖ = p(zₙ = k | xₙ),
``Mixture.responsibilities``) with the hard one (their argmax,
``Mixture.predict``), against the components the points were really drawn
from.

Writes tutorial_03_responsibilities.png into the output directory.
Run: python examples/tutorial_03_responsibilities.py [output directory, default docs/figures]
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
N = 400
N_INIT = 10  # restarts; the best is kept
UNSURE = 0.9  # a point is ambiguous when no component has responsibility ≥ this


def true_mixture():
    """The mixture the data is drawn from: weights 0.6 and 0.4, overlapping ellipses."""
    family = mx.Gaussian("full")
    means = np.array([[0.0, 0.0], [2.5, 1.5]])
    covariances = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.8]]])
    return mx.Mixture(np.array([0.6, 0.4]), family.make_params(means, covariances), family)


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def main(out_dir=FIGURES):
    truth = true_mixture()
    x, z = truth.sample(N, key=jax.random.key(3))
    x, z = np.asarray(x), np.asarray(z)

    result = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), n_init=N_INIT, tol=1e-8)
    fitted = result.mixture
    # Components are found in no particular order: number them like the true ones.
    if np.linalg.norm(np.asarray(fitted.params.means)[0] - np.asarray(truth.params.means)[0]) > 1.0:
        order = np.array([1, 0])
        fitted = mx.Mixture(fitted.weights[order], type(fitted.params)(*(leaf[order] for leaf in fitted.params)),
                            fitted.family)
    resp = np.asarray(fitted.responsibilities(x))
    labels = np.asarray(fitted.predict(x))
    unsure = resp.max(axis=1) < UNSURE

    print(f"fitted weights {np.asarray(fitted.weights).round(3).tolist()} (true 0.6, 0.4); "
          f"{int(result.n_iter)} EM iterations")
    print("first five points: x, responsibilities (r_n1, r_n2), hard cluster, true component")
    for n in range(5):
        print(f"  {x[n].round(2).tolist()}  r = {resp[n].round(3).tolist()}  cluster {labels[n] + 1}  true {z[n] + 1}")
    print(f"rows of r sum to one: largest |Σₖ rₙₖ - 1| = {np.max(np.abs(resp.sum(axis=1) - 1)):.1e}")
    print(f"soft counts Nₖ = Σₙ rₙₖ: {resp.sum(axis=0).round(1).tolist()}; "
          f"hard: {np.bincount(labels, minlength=2).tolist()}; true: {np.bincount(z, minlength=2).tolist()}")
    print(f"{int(unsure.sum())} of {N} points have max_k r_nk < {UNSURE}")
    hard_right = float(np.mean(labels == z))
    soft_right = float(np.mean(resp[np.arange(N), z]))
    hard_right_unsure = float(np.mean(labels[unsure] == z[unsure]))
    soft_right_unsure = float(np.mean(resp[unsure][np.arange(unsure.sum()), z[unsure]]))
    print(f"hard clusters equal to the true component: {hard_right:.3f} (ambiguous points: {hard_right_unsure:.3f})")
    print(f"mean responsibility of the true component: {soft_right:.3f} (ambiguous points: {soft_right_unsure:.3f})")

    fig, (soft, hard) = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    points = soft.scatter(x[:, 0], x[:, 1], c=resp[:, 1], cmap="coolwarm", vmin=0, vmax=1, s=14, linewidths=0)
    fig.colorbar(points, ax=soft, label=r"$r_{n2}$, responsibility of component 2")
    plot.ellipses(fitted, ax=soft, n_std=2.0, fill=False)
    soft.set_title("Soft: colour = responsibility")
    plot.clusters(fitted, x, ax=hard)
    plot.ellipses(fitted, ax=hard, n_std=2.0, fill=False)
    hard.scatter(x[unsure, 0], x[unsure, 1], s=60, facecolors="none", edgecolors="k", linewidths=0.8,
                 label=rf"max$_k$ $r_{{nk}}$ < {UNSURE} ({int(unsure.sum())} points)")
    hard.set_title("Hard: colour = argmax$_k$ $r_{nk}$")
    hard.legend(fontsize="small", loc="lower right")
    for ax in (soft, hard):
        ax.set_xlabel("$x_1$")
    soft.set_ylabel("$x_2$")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_03_responsibilities.png")
    print(f"wrote {out}")
    return {"x": x, "z": z, "mixture": fitted, "responsibilities": resp, "labels": labels, "figure": out}


if __name__ == "__main__":
    main(*sys.argv[1:])
