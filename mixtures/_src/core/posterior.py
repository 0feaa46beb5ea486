"""What an E-step pass computes: responsibilities of a block of rows, and the sums over all rows."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Posterior", "Sums", "responsibilities_from_log_probs"]


class Sums(NamedTuple):
    """Sums over the data: per-component counts and statistics, and Σₙ wₙ log p(xₙ).

    Attributes:
      counts: (K,) Σₙ wₙ rₙₖ.
      stats: the family's statistics (leading axis K), summed over the rows.
      log_likelihood: scalar Σₙ wₙ ℓₙ, ℓₙ each row's log-likelihood term
        (see :func:`responsibilities_from_log_probs`).
    """

    counts: jax.Array
    stats: Any
    log_likelihood: jax.Array


def responsibilities_from_log_probs(logp: jax.Array, hard: bool = False, labels=None):
    """Responsibilities (B, K) and each row's log-likelihood term (B,) from the (B, K) values log πₖ + log p(xₙ | θₖ).

    Soft: rₙₖ = p(zₙ = k | xₙ) and the term is log p(xₙ); a row that every
    component gives −∞ gets zero responsibilities, never NaN. Hard
    (classification EM): one-hot argmax responsibilities and the term
    maxₖ log πₖ p(xₙ | θₖ). ``labels`` (B,) fixes the rows with a label
    l ≥ 0 to one-hot responsibilities at l and the term log π_l p(xₙ | θ_l).

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.posterior import responsibilities_from_log_probs
      >>> resp, ll = responsibilities_from_log_probs(np.log(np.array([[0.1, 0.3]])))
      >>> resp.round(2).tolist(), round(float(ll[0]), 4)
      ([[0.25, 0.75]], -0.9163)
    """
    if hard:
        best = jnp.argmax(logp, axis=1)
        resp = jax.nn.one_hot(best, logp.shape[1], dtype=logp.dtype)
        ll = jnp.take_along_axis(logp, best[:, None], axis=1)[:, 0]
    else:
        ll = jax.nn.logsumexp(logp, axis=1)
        resp = jnp.exp(logp - jnp.where(jnp.isfinite(ll), ll, 0.0)[:, None])
    if labels is not None:
        known = labels >= 0
        label = jnp.maximum(labels, 0)
        resp = jnp.where(known[:, None], jax.nn.one_hot(label, logp.shape[1], dtype=logp.dtype), resp)
        ll = jnp.where(known, jnp.take_along_axis(logp, label[:, None], axis=1)[:, 0], ll)
    return resp, ll


class Posterior(NamedTuple):
    """How a block's component log-densities become responsibilities, for one mixture.

    Attributes:
      log_weights: (K,) log mixing weights (−∞ for a switched-off component).
      hard: one-hot argmax responsibilities (classification EM).
      labels: (N,) int32 component of each labelled row, −1 for unlabelled
        rows, or None.
    """

    log_weights: jax.Array
    hard: bool = False
    labels: jax.Array | None = None

    def __call__(self, log_probs: jax.Array, index: jax.Array):
        """Responsibilities (B, K) and row terms (B,) of rows ``index`` (B,) given their (B, K) log pₖ(xₙ)."""
        labels = None if self.labels is None else self.labels[index]
        return responsibilities_from_log_probs(log_probs + self.log_weights[None, :], self.hard, labels)

    def weighted(self, log_probs: jax.Array, index: jax.Array, weights: jax.Array):
        """Responsibilities times row weights (B, K) and Σₙ wₙ ℓₙ over the block (rows of weight 0 add exactly 0)."""
        resp, ll = self(log_probs, index)
        return resp * weights[:, None], jnp.sum(jnp.where(weights > 0, weights * ll, 0.0))
