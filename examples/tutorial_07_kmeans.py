"""Tutorial 7: K-means is EM with hard assignments, equal weights and identity covariances.

Draws 400 points from two long, thin, parallel clusters. Runs Lloyd's K-means
as a special case of ``mx.fit`` (``mx.Gaussian("identity")``,
``assignment="hard"``, ``update_weights=False``, from two data rows as
centres), shows that soft responsibilities of equal-weight spherical
components with a shrinking variance σ² turn into the K-means assignment,
and compares K-means with a full-covariance mixture on the same data.

Writes tutorial_07_kmeans.png into the output directory.
Run: python examples/tutorial_07_kmeans.py [output directory, default docs/figures]
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
SIGMAS = (2.0, 1.0, 0.5, 0.1)
N_INIT = 10  # restarts of the full-covariance mixture


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def thin_clusters():
    """Two equally likely clusters, 3 wide (standard deviation) and 0.5 high, 2.5 apart vertically."""
    family = mx.Gaussian("full")
    covariances = np.array([[[9.0, 0.0], [0.0, 0.25]]] * 2)
    return mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.array([[0.0, -1.25], [0.0, 1.25]]), covariances),
                      family)


def main(out_dir=FIGURES):
    x, z = thin_clusters().sample(N, key=jax.random.key(7))
    x, z = np.asarray(x), np.asarray(z)

    start_rows = np.random.default_rng(0).choice(N, size=2, replace=False)
    centres = x[start_rows]
    identity = mx.Gaussian("identity")
    start = mx.Mixture(np.full(2, 0.5), identity.make_params(centres), identity)
    kmeans = mx.fit(x, identity, 2, key=None, init=start, assignment="hard", update_weights=False, tol=1e-12)
    km = kmeans.mixture
    labels = np.asarray(km.predict(x))
    km_centres = np.asarray(km.params.means)
    inertia = float(np.sum((x - km_centres[labels]) ** 2))
    # The monitored value is -½ (inertia / N + D log 2π) - log K, so the inertia can be read off it:
    from_log_lik = -2 * N * (float(kmeans.log_likelihood) + np.log(2)) - N * 2 * np.log(2 * np.pi)
    print(f"K-means as hard EM from rows {start_rows.tolist()}: {int(kmeans.n_iter)} iterations, "
          f"converged {bool(kmeans.converged)}")
    print(f"  centres {km_centres.round(3).tolist()}")
    print(f"  inertia Σ‖xₙ - μ_zₙ‖² = {inertia:.4f} (from the log-likelihood: {from_log_lik:.4f})")

    # Soft responsibilities of equal-weight spherical components at the K-means centres.
    t = np.linspace(-0.5, 1.5, 201)
    line = km_centres[0] + t[:, None] * (km_centres[1] - km_centres[0])
    spherical = mx.Gaussian("spherical")
    soft_on_line, mean_max = {}, {}
    for sigma in SIGMAS:
        m = mx.Mixture(np.full(2, 0.5), spherical.make_params(km_centres, np.full(2, sigma**2)), spherical)
        soft_on_line[sigma] = np.asarray(m.responsibilities(line))[:, 1]
        r = np.asarray(m.responsibilities(x))
        mean_max[sigma] = float(r.max(axis=1).mean())
        agree = float(np.mean(r.argmax(axis=1) == labels))
        print(f"  σ = {sigma}: mean over points of max_k r_nk = {mean_max[sigma]:.4f}; argmax equals K-means: {agree:.3f}")

    full = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), n_init=N_INIT, tol=1e-8)
    gmm = full.mixture
    gmm_labels = np.asarray(gmm.predict(x))
    finals = np.asarray(full.all_log_likelihoods)
    print(f"full-covariance mixture, {N_INIT} restarts, {int(np.sum(finals > finals.max() - 1e-6))} reached the best; "
          f"final mean log-likelihoods:")
    print("  " + " ".join(str(v) for v in np.sort(finals)[::-1].round(4).tolist()))

    def agreement(found):  # fraction matching the true clusters, up to renaming
        same = float(np.mean(found == z))
        return max(same, 1 - same)

    print(f"agreement with the true clusters: K-means {agreement(labels):.3f}, "
          f"full-covariance mixture {agreement(gmm_labels):.3f}")

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.25, 1.25, 1]})
    plot.clusters(km, x, ax=left)
    left.scatter(km_centres[:, 0], km_centres[:, 1], marker="X", s=120, color="k", label="K-means centres")
    left.set_title(f"K-means (hard EM, identity covariance): {agreement(labels):.0%} right", fontsize="medium")
    left.legend(fontsize="small", loc="lower right")
    plot.clusters(gmm, x, ax=middle)
    plot.ellipses(gmm, ax=middle, n_std=2.0, fill=False)
    middle.set_title(f"Full-covariance mixture (soft EM): {agreement(gmm_labels):.0%} right", fontsize="medium")
    for ax in (left, middle):
        ax.set_xlabel("$x_1$")
        ax.set_ylim(-4, 4)
    left.set_ylabel("$x_2$")
    for sigma in SIGMAS:
        right.plot(t, soft_on_line[sigma], label=f"σ = {sigma}")
    right.set_xlabel(r"$t$, for the point $c_1 + t\,(c_2 - c_1)$")
    right.set_ylabel("responsibility of component 2")
    right.set_title("Soft EM with Σ = σ²I: σ → 0 is K-means", fontsize="medium")
    right.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_07_kmeans.png")
    print(f"wrote {out}")
    return {
        "x": x,
        "start_centres": centres,
        "labels": labels,
        "centres": km_centres,
        "inertia": inertia,
        "inertia_from_log_likelihood": from_log_lik,
        "mean_max_responsibility": mean_max,
        "figure": out,
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
