"""Tutorial 4: the E-step and the M-step, by hand and with ``mx.em_step``.

Starts a two-component full-covariance Gaussian mixture on the Old Faithful
data from a poor guess, computes one E-step (the responsibilities) and one
M-step (weights, means and covariances from responsibility-weighted sums)
with NumPy, checks them against ``Mixture.responsibilities`` and
``mx.em_step``, then runs twenty EM iterations and draws the mixture after
some of them.

Writes tutorial_04_em_steps.png into the output directory.
Run: python examples/tutorial_04_em_steps.py [output directory, default docs/figures]
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
REG_COVAR = 1e-6  # mx.Gaussian's default, added to every covariance's diagonal by the M-step
N_STEPS = 20
DRAWN = (0, 1, 4, 7, 10, 20)  # the iterations shown in the figure


def start(x):
    """A poor start: both components near the middle of the data, each with the data's covariance."""
    family = mx.Gaussian("full", reg_covar=REG_COVAR)
    means = np.array([[3.0, 65.0], [3.6, 72.0]])
    covariances = np.stack([np.cov(x.T, bias=True)] * 2)
    return mx.Mixture(np.array([0.5, 0.5]), family.make_params(means, covariances), family)


def log_gaussian(x, mean, covariance):
    """log N(xₙ | mean, covariance) for each row, by the formula."""
    d = x.shape[1]
    diff = x - mean
    _, log_det = np.linalg.slogdet(covariance)
    mahalanobis = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(covariance), diff)
    return -0.5 * (d * np.log(2 * np.pi) + log_det + mahalanobis)


def e_step(x, weights, means, covariances):
    """Responsibilities rₙₖ = πₖ N(xₙ | μₖ, Σₖ) / Σⱼ πⱼ N(xₙ | μⱼ, Σⱼ), and the mean log-likelihood."""
    log_joint = np.stack([np.log(w) + log_gaussian(x, m, c) for w, m, c in zip(weights, means, covariances)], axis=1)
    log_px = np.logaddexp.reduce(log_joint, axis=1)  # log p(xₙ), computed stably
    return np.exp(log_joint - log_px[:, None]), float(log_px.mean())


def m_step(x, resp):
    """Nₖ = Σₙ rₙₖ, πₖ = Nₖ / N, μₖ = Σₙ rₙₖ xₙ / Nₖ, Σₖ = Σₙ rₙₖ (xₙ − μₖ)(xₙ − μₖ)ᵀ / Nₖ (+ reg_covar I)."""
    counts = resp.sum(axis=0)
    weights = counts / len(x)
    means = resp.T @ x / counts[:, None]
    covariances = np.stack([
        (resp[:, k, None] * (x - means[k])).T @ (x - means[k]) / counts[k] + REG_COVAR * np.eye(x.shape[1])
        for k in range(len(counts))
    ])
    return weights, means, covariances


def as_numpy(mixture):
    return (np.asarray(mixture.weights), np.asarray(mixture.params.means), np.asarray(mixture.params.covariances))


def save(fig, path):
    """Writes ``fig`` as a 100 dpi PNG with a 256-colour palette (a third of the size, no visible change)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def main(out_dir=FIGURES):
    x = mx.datasets.load_old_faithful()
    mixture = start(x)

    resp, log_lik = e_step(x, *as_numpy(mixture))
    new_by_hand = m_step(x, resp)
    new, log_lik_lib = mx.em_step(mixture, x)
    e_diff = float(np.max(np.abs(resp - np.asarray(mixture.responsibilities(x)))))
    m_diff = [float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0))) for a, b in zip(as_numpy(new), new_by_hand)]
    print("one EM step from the start, by hand (NumPy) and by the library:")
    print(f"  E-step: largest |r_nk by hand - Mixture.responsibilities| = {e_diff:.1e}")
    print("  M-step: largest difference of weights, means, covariances (relative where > 1):")
    print(f"    {', '.join(f'{d:.1e}' for d in m_diff)}")
    print(f"  mean log-likelihood before the step: {log_lik:.6f} by hand, {float(log_lik_lib):.6f} from em_step")
    print(f"  soft counts N_k = {resp.sum(axis=0).round(2).tolist()}, new weights {new_by_hand[0].round(4).tolist()}")

    mixtures, log_liks = [mixture], []
    for _ in range(N_STEPS):
        mixture, value = mx.em_step(mixture, x)
        mixtures.append(mixture)
        log_liks.append(float(value))
    log_liks.append(float(mixture.score(x)))
    print("iteration, mean log-likelihood, weights, means:")
    for t in DRAWN:
        w, m, _ = as_numpy(mixtures[t])
        print(f"  {t:2d}  {log_liks[t]:.6f}  {w.round(3).tolist()}  {m.round(2).tolist()}")
    print(f"mean log-likelihood after 0, 1, ..., {N_STEPS} steps: {' '.join(f'{v:.4f}' for v in log_liks)}")
    steps = np.diff(log_liks)
    print(f"smallest change of the log-likelihood over {N_STEPS} steps: {steps.min():.2e}")

    fig, axes = plt.subplots(2, 3, figsize=(10, 6), sharex=True, sharey=True)
    for ax, t in zip(axes.ravel(), DRAWN):
        r = np.asarray(mixtures[t].responsibilities(x))
        ax.scatter(x[:, 0], x[:, 1], c=r[:, 1], cmap="coolwarm", vmin=0, vmax=1, s=8, linewidths=0)
        plot.ellipses(mixtures[t], ax=ax, n_std=(1.0, 2.0), fill=False)
        ax.set_title(f"after {t} step{'s' if t != 1 else ''}: mean log-lik {log_liks[t]:.3f}", fontsize="medium")
        ax.set_xlim(1.2, 5.5)
        ax.set_ylim(38, 100)
    for ax in axes[1]:
        ax.set_xlabel("eruption length (min)")
    for ax in axes[:, 0]:
        ax.set_ylabel("waiting time (min)")
    fig.suptitle("EM on Old Faithful from a poor start; colour = responsibility of component 2", fontsize="medium")
    fig.tight_layout()
    out = save(fig, Path(out_dir) / "tutorial_04_em_steps.png")
    print(f"wrote {out}")
    return {
        "start": mixtures[0],
        "after_one": mixtures[1],
        "e_step_difference": e_diff,
        "m_step_difference": m_diff,
        "log_likelihoods": log_liks,
        "figure": out,
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
