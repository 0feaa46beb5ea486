"""Define a family the library does not ship (Rayleigh), fit a mixture of it, and check it.

Run: python examples/custom_family.py
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import mixtures as mx
from mixtures.testing import check_family

jax.config.update("jax_enable_x64", True)


class RayleighParams(NamedTuple):
    scales: jax.Array  # σ per feature: (D,) for one component, (K, D) in a mixture


@dataclasses.dataclass(frozen=True)
class Rayleigh(mx.ExponentialFamily):
    """Independent Rayleigh features: p(x | σ) = x / σ² · exp(−x² / 2σ²), x > 0."""

    # The exponential-family form, for one observation x of shape (D,).
    def sufficient_stats(self, x):
        return x**2  # T(x)

    def log_base_measure(self, x):
        return jnp.sum(jnp.log(x))  # log h(x)

    def log_partition(self, natural):
        return -jnp.sum(jnp.log(-2.0 * natural))  # A(η), defined for η < 0

    def to_natural(self, params):
        return -0.5 / params.scales**2  # η = −1 / 2σ²

    def from_natural(self, natural):
        return RayleighParams(jnp.sqrt(-0.5 / natural))

    def initial_natural(self, mean):
        return -jnp.ones_like(mean)  # A is finite only for η < 0: start Newton there

    # What no exponential-family form determines.
    def sample(self, params, key):
        u = jax.random.uniform(key, params.scales.shape, params.scales.dtype, minval=1e-12)
        return params.scales * jnp.sqrt(-2.0 * jnp.log(u))  # inverse-CDF draw

    def n_features(self, params):
        return params.scales.shape[-1]

    def n_free_parameters(self, n_components, n_features):
        return n_components * n_features

    def check_data(self, x):
        bad = np.argwhere(x <= 0)
        if len(bad):
            row, col = bad[0]
            raise ValueError(f"column {col} of `x` must be positive; row {row} has {x[row, col]}.")


@dataclasses.dataclass(frozen=True)
class RayleighClosedForm(Rayleigh):
    """The same family with its M-step in closed form: E[x²] = 2σ², so σ = √(mean / 2)."""

    def params_from_mean(self, mean, previous):
        return RayleighParams(jnp.sqrt(mean / 2.0))


def main():
    rng = np.random.default_rng(0)
    true_scales = np.array([[1.0, 4.0], [5.0, 0.5]])
    z = rng.choice(2, size=4000, p=[0.3, 0.7])
    x = rng.rayleigh(true_scales[z])

    for family in (Rayleigh(), RayleighClosedForm()):
        result = mx.fit(x, family, n_components=2, key=jax.random.key(0), tol=1e-8)
        order = np.argsort(np.asarray(result.mixture.params.scales)[:, 0])
        print(
            f"{type(family).__name__}: log-likelihood {float(result.log_likelihood):.5f} per sample, "
            f"{int(result.n_iter)} iterations\n"
            f"  weights {np.asarray(result.mixture.weights)[order].round(3)} (true [0.3 0.7])\n"
            f"  scales  {np.asarray(result.mixture.params.scales)[order].round(3).tolist()} "
            f"(true {true_scales.tolist()})"
        )

    report = check_family(RayleighClosedForm(), x[:400], key=jax.random.key(1), bad_data=[-x[:10]],
                          n_samples=5000)
    print("check_family passed:", ", ".join(sorted(report)))


if __name__ == "__main__":
    main()
