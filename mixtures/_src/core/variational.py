"""The variational posterior of a mixture: over its weights (Dirichlet or stick-breaking) and its components.

Mean-field variational Bayes keeps q(π) q(θ) q(z). For the weights:

* a Dirichlet(α₀) prior gives q(π) = Dirichlet(α₀ + Nₖ), held as a
  :class:`~mixtures.priors.DirichletPrior` of (K,) concentrations;
* a truncated stick-breaking prior (:class:`~mixtures.priors.DirichletProcessPrior`, γ)
  gives independent sticks q(vₖ) = beta(1 + Nₖ, γ + Nₖ₊₁ + … + N_K), held as :class:`StickBreaking`.

The components' posterior is the family's (:meth:`~mixtures.Family.posterior_update`).
:class:`VariationalMixture` holds both, with the family, as a pytree.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, digamma, gammaln

from mixtures._src.core import blocks
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.priors import DirichletPrior, DirichletProcessPrior

__all__ = [
    "StickBreaking", "VariationalMixture", "expected_log_weights", "mean_weights", "weights_kl", "weights_posterior",
]


class StickBreaking(NamedTuple):
    """The variational posterior of stick-breaking weights: vₖ ~ beta(aₖ, bₖ), πₖ = vₖ (1 − v₁) ⋯ (1 − vₖ₋₁).

    Attributes:
      a: (K,) first beta parameters, 1 + Nₖ.
      b: (K,) second beta parameters, γ + Nₖ₊₁ + … + N_K.
    """

    a: jax.Array
    b: jax.Array


def weights_posterior(prior, counts):
    """q(π) given the expected counts Nₖ (K,), under a Dirichlet or a stick-breaking prior.

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import DirichletProcessPrior
      >>> q = weights_posterior(DirichletProcessPrior(np.array(2.0)), np.array([3.0, 1.0, 0.0]))
      >>> q.a.tolist(), q.b.tolist()
      ([4.0, 2.0, 1.0], [3.0, 2.0, 2.0])
    """
    if isinstance(prior, DirichletProcessPrior):
        later = jnp.cumsum(counts[::-1])[::-1] - counts  # Nₖ₊₁ + … + N_K
        return StickBreaking(1.0 + counts, prior.concentration + later)
    return DirichletPrior(prior.concentration + counts)


def expected_log_weights(posterior):
    """E_q[log πₖ], (K,).

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import DirichletPrior
      >>> expected_log_weights(DirichletPrior(np.array([1.0, 1.0]))).round(6).tolist()  # ψ(1) − ψ(2) = −1
      [-1.0, -1.0]
    """
    if isinstance(posterior, StickBreaking):
        total = digamma(posterior.a + posterior.b)
        log_v = digamma(posterior.a) - total
        log_rest = digamma(posterior.b) - total
        return log_v + jnp.cumsum(log_rest) - log_rest  # E log vₖ + E log(1 − v₁) + … + E log(1 − vₖ₋₁)
    alpha = posterior.concentration
    return digamma(alpha) - digamma(jnp.sum(alpha))


def mean_weights(posterior):
    """E_q[πₖ], (K,), scaled to sum to one (a truncated stick-breaking leaves its last remainder out).

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import DirichletPrior
      >>> mean_weights(DirichletPrior(np.array([1.0, 3.0]))).tolist()
      [0.25, 0.75]
    """
    if isinstance(posterior, StickBreaking):
        v = posterior.a / (posterior.a + posterior.b)
        rest = jnp.cumprod(1.0 - v)
        w = v * jnp.concatenate([jnp.ones((1,), v.dtype), rest[:-1]])
    else:
        w = posterior.concentration
    return w / jnp.sum(w)


def weights_kl(posterior, prior):
    """KL(q(π) ‖ p(π)): Dirichlet to Dirichlet(α₀), or the sum over sticks of beta to beta(1, γ).

    Example:
      >>> import numpy as np
      >>> from mixtures.priors import DirichletPrior
      >>> float(weights_kl(DirichletPrior(np.array([0.5, 0.5])), DirichletPrior(np.array(0.5))))
      0.0
    """
    if isinstance(posterior, StickBreaking):
        a, b, g = posterior.a, posterior.b, prior.concentration
        total = digamma(a + b)
        per = (
            betaln(jnp.ones_like(g), g)
            - betaln(a, b)
            + (a - 1.0) * (digamma(a) - total)
            + (b - g) * (digamma(b) - total)
        )
        return jnp.sum(per)
    alpha, alpha0 = posterior.concentration, prior.concentration
    k = alpha.shape[0]
    total = jnp.sum(alpha)
    return (
        gammaln(total)
        - jnp.sum(gammaln(alpha))
        - gammaln(k * alpha0)
        + k * gammaln(alpha0)
        + jnp.sum((alpha - alpha0) * (digamma(alpha) - digamma(total)))
    )


@functools.partial(jax.tree_util.register_dataclass, data_fields=["weights", "components"], meta_fields=["family"])
@dataclasses.dataclass(frozen=True, eq=False)
class VariationalMixture:
    """A variational posterior over a mixture's weights and component parameters; a pytree (the family is static).

    Attributes:
      weights: q(π): a :class:`~mixtures.priors.DirichletPrior` of (K,)
        concentrations, or a :class:`StickBreaking` of (K,) beta parameters.
      components: q(θ): the family's posterior, its prior type with a
        leading axis K (a :class:`~mixtures.priors.GaussianPrior` for
        :class:`~mixtures.Gaussian`, a :class:`~mixtures.priors.ConjugatePrior`
        for an :class:`~mixtures.ExponentialFamily`, a tuple for
        :class:`~mixtures.Independent`).
      family: the component family.

    Example:
      >>> import jax, mixtures as mx
      >>> x = mx.datasets.load_old_faithful()
      >>> post = mx.fit_variational(x, mx.Gaussian("full"), 6, key=jax.random.key(0)).posterior
      >>> post.mixture.weights.shape, post.predict(x[:3]).shape
      ((6,), (3,))
    """

    weights: Any
    components: Any
    family: Family

    @property
    def n_components(self) -> int:
        """The number of components K (the truncation, for stick-breaking weights)."""
        leaf = self.weights.a if isinstance(self.weights, StickBreaking) else self.weights.concentration
        return leaf.shape[-1]

    @property
    def mixture(self) -> Mixture:
        """The :class:`~mixtures.Mixture` at the posterior mean: weights E_q[π], parameters ``family.posterior_mean``."""
        return Mixture(mean_weights(self.weights), self.family.posterior_mean(self.components), self.family)

    def e_step(self):
        """``(params, log_weights)``: θ̃ and E_q[log πₖ] + cₖ (:meth:`~mixtures.Family.expected_params`), the E-step's inputs."""
        params, offsets = self.family.expected_params(self.components)
        return params, expected_log_weights(self.weights) + offsets

    def expected(self) -> Mixture:
        """The E-step's mixture: parameters θ̃ and weights ∝ exp(E_q[log πₖ] + cₖ) (:meth:`e_step`).

        Its responsibilities are the variational q(zₙ = k); its log-density is
        log Σₖ exp(E_q[log πₖ p(xₙ | θₖ)]) minus the constant
        :meth:`log_normalizer`.
        """
        params, log_w = self.e_step()
        return Mixture(jax.nn.softmax(log_w), params, self.family)

    def log_normalizer(self) -> jax.Array:
        """log Σₖ exp(E_q[log πₖ] + cₖ): what :meth:`expected` divides its weights by."""
        return jax.nn.logsumexp(self.e_step()[1])

    def responsibilities(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """The variational responsibilities q(zₙ = k) ∝ exp(E_q[log πₖ] + E_q[log p(xₙ | θₖ)]), (N, K)."""
        return self.expected().responsibilities(x, chunk_size=chunk_size)

    def predict(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """argmaxₖ of :meth:`responsibilities`, (N,) int32."""
        return self.expected().predict(x, chunk_size=chunk_size)

    def log_prob(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """The posterior-predictive log-density log Σₖ E_q[πₖ] ∫ p(xₙ | θ) q(θₖ) dθ of each row, (N,).

        Closed form for every conjugate family (a Student-t for Gaussian components).
        """
        mixture = self.mixture
        rows = mixture._data(x)
        chunk = mixture._chunk(chunk_size)
        return _predictive(self, rows, chunk)


@functools.partial(jax.jit, static_argnames="chunk_size")
def _predictive(posterior: VariationalMixture, x, chunk_size: int):
    log_w = jnp.log(mean_weights(posterior.weights))
    family = posterior.family
    return blocks.map_over_chunks(
        lambda rows: jax.nn.logsumexp(family.predictive_log_prob(posterior.components, rows) + log_w[None, :], axis=1),
        x,
        chunk_size,
    )

