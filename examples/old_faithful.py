"""Fit Gaussian mixtures to the Old Faithful data and compare covariance types.

Run: python examples/old_faithful.py
"""

import jax
import numpy as np

import mixtures as mx

jax.config.update("jax_enable_x64", True)


def main():
    x = mx.datasets.load_old_faithful()
    print(f"{x.shape[0]} eruptions; columns: eruption length, waiting time (minutes)\n")
    for covariance in ("full", "tied", "diag", "spherical"):
        result = mx.fit(x, mx.Gaussian(covariance), n_components=2, key=jax.random.key(0), tol=1e-8)
        m = result.mixture
        order = np.argsort(np.asarray(m.params.means)[:, 0])
        means = np.asarray(m.params.means)[order].round(2).tolist()
        weights = np.asarray(m.weights)[order].round(3).tolist()
        print(
            f"{covariance:>9}: log-likelihood {float(result.log_likelihood):8.4f} per sample "
            f"after {int(result.n_iter):3d} iterations; weights {weights}; means {means}"
        )

    # Soft and hard clustering of a few eruptions under the full-covariance fit.
    m = mx.fit(x, mx.Gaussian("full"), 2, key=jax.random.key(0), tol=1e-8).mixture
    rows = x[:5]
    print("\nfirst five eruptions, responsibilities and hard cluster:")
    for row, r, z in zip(rows, np.asarray(m.responsibilities(rows)), np.asarray(m.predict(rows))):
        print(f"  {row}  r = {r.round(3)}  cluster {z}")

    # Draw from the fitted model by the generative process.
    sample, z = m.sample(10_000, key=jax.random.key(1))
    print(f"\n10 000 draws: component frequencies {np.bincount(np.asarray(z)) / 10_000}")


if __name__ == "__main__":
    main()
