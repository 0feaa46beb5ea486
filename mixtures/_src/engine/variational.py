"""Mean-field variational Bayes on the EM engine: the same E-step and statistics, a posterior instead of a point.

One iteration from q(π) q(θ):

1. the family's :meth:`~mixtures.Family.expected_params` give θ̃ₖ and offsets cₖ
   with E_q[log p(x | θₖ)] = log p(x | θ̃ₖ) + cₖ;
2. the engine's :func:`~mixtures.engine.accumulate` under θ̃ with the
   log-weights E_q[log πₖ] + cₖ gives q(zₙ = k) (its responsibilities), the
   statistics (Nₖ, Sₖ) and Σₙ wₙ log Σₖ exp(E_q[log πₖ p(xₙ | θₖ)]);
3. the ELBO of q(π) q(θ) (with the optimal q(z)) is that sum minus
   KL(q(θ) ‖ p(θ)) and KL(q(π) ‖ p(π));
4. the new posterior is the prior plus the statistics
   (:meth:`~mixtures.Family.posterior_update`, and the weights' own update).

Each step is a coordinate ascent on the ELBO, so ``history`` never decreases.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mixtures._src.core import progress
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.posterior import Sums
from mixtures._src.core.variational import VariationalMixture, weights_kl, weights_posterior
from mixtures._src.engine import em
from mixtures._src.engine.options import EMOptions, Rows

__all__ = ["VariationalState", "advance", "divergence", "elbo_sums", "expected_sums", "posterior_from", "start", "step"]


class VariationalState(NamedTuple):
    """The loop's state between iterations (a pytree), with :class:`~mixtures.engine.LoopState`'s counters.

    Attributes:
      posterior: the current :class:`VariationalMixture`.
      n_iter: int32 scalar, the updates run.
      log_likelihood: the ELBO per unit weight before the last update (−∞ before the first).
      previous: the one before it.
    """

    posterior: VariationalMixture
    n_iter: jax.Array
    log_likelihood: jax.Array
    previous: jax.Array


def posterior_from(family, sums: Sums, frame, prior) -> VariationalMixture:
    """The posterior given summed statistics accumulated under parameters ``frame``; ``prior`` a Prior."""
    return VariationalMixture(
        weights_posterior(prior.weights, sums.counts),
        family.posterior_update(sums.stats, sums.counts, frame, prior.components),
        family,
    )


def divergence(posterior: VariationalMixture, prior) -> jax.Array:
    """KL(q(θ) ‖ p(θ)) + KL(q(π) ‖ p(π)): what the ELBO subtracts from the E-step's log-likelihood sum."""
    components = posterior.family.posterior_kl(posterior.components, prior.components)
    return components + weights_kl(posterior.weights, prior.weights)


def expected_sums(posterior: VariationalMixture, rows: Rows, options: EMOptions, *, once: bool = False):
    """One variational E-step: the statistics under ``posterior`` and the parameters θ̃ they were taken under.

    Its ``log_likelihood`` is Σₙ wₙ log Σₖ exp(E_q[log πₖ p(xₙ | θₖ)]), the
    ELBO before :func:`divergence` is subtracted.
    """
    params, log_w = posterior.e_step()
    frame = Mixture(jax.nn.softmax(log_w), params, posterior.family)
    return em.accumulate(frame, rows, options, once=once, log_weights=log_w), params


def elbo_sums(posterior: VariationalMixture, rows: Rows, options: EMOptions, prior, *, once: bool = False):
    """:func:`expected_sums`, and the ELBO (a scalar total)."""
    sums, params = expected_sums(posterior, rows, options, once=once)
    return sums, params, sums.log_likelihood - divergence(posterior, prior)


def step(posterior: VariationalMixture, rows: Rows, options: EMOptions, prior):
    """One update; returns (new posterior, ELBO per unit weight of ``posterior``)."""
    sums, params, elbo = elbo_sums(posterior, rows, options, prior)
    new = posterior_from(posterior.family, sums, params, prior)
    return new, elbo / em._total_weight(rows, options.axes)


def start(mixture: Mixture, rows: Rows, options: EMOptions, prior) -> VariationalState:
    """The state whose posterior is the update from ``mixture``'s hard assignments (each row to its likeliest component).

    As scikit-learn starts from K-means labels: every component then starts
    from its own rows, where soft responsibilities would let a start's
    overlapping components begin alike.
    """
    sums = em.accumulate(mixture, rows, options.replace(hard=True), once=True)
    posterior = posterior_from(mixture.family, sums, mixture.params, prior)
    begin = jnp.asarray(-jnp.inf, mixture.dtype)
    return VariationalState(posterior, jnp.asarray(0, jnp.int32), begin, begin)


def advance(state: VariationalState, rows: Rows, tol, options: EMOptions, history, *, prior, until, first=0,
            restart=0, receiver=0):
    """Updates from ``state`` while :func:`~mixtures.engine.running` holds, fewer than ``until`` in all.

    As :func:`mixtures._src.engine.em.advance`, with the ELBO per unit
    weight in place of the log-likelihood.
    """

    def cond(carry):
        return em.running(carry[0], tol, until)

    def body(carry):
        state, history = carry
        i = state.n_iter
        new, elbo = step(state.posterior, rows, options, prior)
        if options.report:
            jax.debug.callback(progress.emit, receiver, cond(carry), restart, i + 1, elbo)
        state = VariationalState(new, i + 1, elbo, state.log_likelihood)
        return state, history.at[i - first].set(elbo)

    return lax.while_loop(cond, body, (state, history))
