"""Generalised EM for families with no closed-form M-step.

A family that knows only its log-density and its parameter constraints
subclasses :class:`GradientFamily`. Its M-step is a few Adam steps that raise
the expected complete-data log-likelihood

    Q(θ) = Σₙ wₙ Σₖ rₙₖ log p(xₙ | θₖ),

with rₙₖ the responsibilities under the previous mixture, in an unconstrained
parametrisation u = to_unconstrained(θ). Q and ∇Q are sums over rows, so each
Adam step is one chunked pass over the data: every block of rows recomputes
its responsibilities from the previous mixture and adds the value and gradient
of its share of Q, so working memory stays O(chunk × K × D).

Q is a sum of one independent term Qₖ per component. Each component keeps the
iterate with the highest Qₖ seen (its start included), and takes new
parameters only when they raise Qₖ strictly; the mixture's log-likelihood
therefore never decreases (a generalised EM step).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
import numbers
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from jax import lax

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture, block_responsibilities, finite_components, where_components

__all__ = ["GradientFamily"]

Params = Any
Unconstrained = Any


@dataclasses.dataclass(frozen=True)
class GradientFamily(Family):
    """Abstract base of families whose M-step is gradient ascent on Q.

    A subclass is a ``@dataclasses.dataclass(frozen=True)`` and implements,
    each for one component (no K axis; the base maps them over components
    with ``vmap``):

    * :meth:`~mixtures.Family.log_prob` for one observation x (D,);
    * :meth:`to_unconstrained`: the parameters as a pytree of unconstrained
      reals (positive scales as logarithms, for instance);
    * :meth:`from_unconstrained`: its inverse, defined on all of ℝ;

    and, as every family, :meth:`~mixtures.Family.sample`,
    :meth:`~mixtures.Family.init_params`, :meth:`~mixtures.Family.n_features`,
    :meth:`~mixtures.Family.n_free_parameters` and optionally
    :meth:`~mixtures.Family.check_data`. If it needs ``__post_init__`` for its
    own fields, it calls ``super().__post_init__()`` first.

    Its :attr:`~mixtures.Family.m_step_needs_data` is True: the EM engine
    runs :meth:`m_step_from_data` in place of :meth:`~mixtures.Family.m_step`,
    and :meth:`accumulate` collects nothing.

    Attributes:
      learning_rate: Adam's initial step size, in units of the unconstrained
        parameters (keyword only). It decays to zero over the ``n_steps`` of
        each M-step by a cosine schedule, so that the last iterates settle
        near the maximiser instead of oscillating at the step size. Adam
        moves a coordinate by about the step size per step whatever the
        gradient's scale, so one M-step moves it by at most about
        ``learning_rate × n_steps / 2``: standardise the data, or raise it,
        when locations must travel far.
      n_steps: Adam steps per M-step (keyword only); each is one pass over
        the data.

    Example:
      >>> import jax, numpy as np
      >>> from mixtures import GradientFamily
      >>> from mixtures import StudentT
      >>> family = StudentT(dof=4.0, learning_rate=0.1, n_steps=10)
      >>> isinstance(family, GradientFamily), family.n_steps
      (True, 10)
    """

    learning_rate: float = dataclasses.field(default=0.05, kw_only=True)
    n_steps: int = dataclasses.field(default=25, kw_only=True)

    m_step_needs_data: ClassVar[bool] = True

    def __post_init__(self):
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"`learning_rate` must be a positive real number; received {lr!r}.")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`learning_rate` must be finite and positive; received {lr}.")
        object.__setattr__(self, "learning_rate", float(lr))
        object.__setattr__(self, "n_steps", checks.positive_int(self.n_steps, "n_steps"))

    # -- what a family defines ----------------------------------------------

    @abc.abstractmethod
    def to_unconstrained(self, params: Params) -> Unconstrained:
        """One component's parameters as a pytree of unconstrained real arrays.

        Args:
          params: one component's parameters (the K axis removed).

        Returns:
          A pytree of floating arrays, any real value allowed, in the
          parameters' dtype.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT, StudentTParams
          >>> loc, log_scale = StudentT().to_unconstrained(StudentTParams(np.zeros(2), np.ones(2)))
          >>> log_scale.tolist()
          [0.0, 0.0]
        """

    @abc.abstractmethod
    def from_unconstrained(self, u: Unconstrained) -> Params:
        """One component's parameters from unconstrained reals; inverse of :meth:`to_unconstrained`.

        Args:
          u: a pytree shaped like :meth:`to_unconstrained`'s result.

        Returns:
          One component's parameters (the K axis removed).

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> StudentT().from_unconstrained((np.zeros(2), np.zeros(2))).scales.tolist()
          [1.0, 1.0]
        """

    # -- derived ------------------------------------------------------------

    def accumulate(self, params: Params, x: jax.Array, resp: jax.Array) -> tuple:
        """Collects nothing: the M-step reads the data itself (the engine sums the counts).

        Args:
          params: parameters, leading axis K (unused).
          x: rows, shape (B, D) (unused).
          resp: responsibilities times row weights, shape (B, K) (unused).

        Returns:
          The empty tuple.

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT
          >>> StudentT().accumulate(None, np.zeros((3, 1)), np.ones((3, 2)))
          ()
        """
        del params, x, resp
        return ()

    def m_step(self, stats, counts, previous):
        """Not available: summed statistics do not determine this family's M-step.

        The engine calls :meth:`m_step_from_data` instead; code that has only
        summed statistics cannot fit a :class:`GradientFamily`.

        Raises:
          TypeError: always.

        Example:
          >>> from mixtures import StudentT
          >>> StudentT().m_step((), None, None)  # doctest: +ELLIPSIS
          Traceback (most recent call last):
          ...
          TypeError: StudentT has no M-step from summed statistics; ...
        """
        del stats, counts, previous
        raise TypeError(
            f"{type(self).__name__} has no M-step from summed statistics; its M-step needs "
            "the data (m_step_needs_data is True): use m_step_from_data(previous, x, weights, chunk_size), "
            "as mixtures.engine.step does."
        )

    def m_step_from_data(
        self,
        previous: Mixture,
        x: jax.Array,
        weights,
        chunk_size: int,
        hard: bool = False,
        labels=None,
        *,
        axes: blocks.Axes = blocks.Axes(),
    ) -> Params:
        """New parameters by ``n_steps`` Adam steps on Q, never lowering any component's Qₖ.

        Qₖ(θ) = Σₙ wₙ rₙₖ log p(xₙ | θ), with rₙₖ the responsibilities under
        ``previous`` (one-hot argmax ones if ``hard``). Adam starts from
        ``previous``'s parameters with a fresh state, and its step size
        decays from ``learning_rate`` to zero (cosine). Component k returns the
        iterate with the highest Qₖ if that beats Qₖ at ``previous`` and is
        finite, and ``previous``'s parameters exactly otherwise. Each step is
        one pass over row blocks of ``chunk_size`` rows; jit- and
        vmap-compatible (``chunk_size`` and ``hard`` static).

        Args:
          previous: the mixture the responsibilities come from; its
            parameters are the starting point.
          x: data, shape (N, D).
          weights: row weights, shape (N,), or None for ones.
          chunk_size: rows per block.
          hard: use hard (argmax) responsibilities (classification EM).
          labels: optional (N,) labels, −1 for unlabelled rows (see
            :func:`mixtures.engine.accumulate`).
          axes: the named axes the call is traced under (with rows split over
            devices, Q and its gradient are summed over every device's rows).

        Returns:
          Parameters shaped and typed like ``previous.params`` (leading axis K).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import StudentT, StudentTParams
          >>> family = StudentT()
          >>> m = mx.Mixture(np.ones(1), StudentTParams(np.zeros((1, 1)), np.ones((1, 1))), family)
          >>> x = np.array([[1.0], [1.5], [2.0]])
          >>> new = family.m_step_from_data(m, x, None, chunk_size=2)
          >>> bool(new.locations[0, 0] > 0.5)  # moved towards the data
          True
        """
        x = jnp.asarray(x)
        if weights is not None:
            weights = jnp.asarray(weights, x.dtype)
        to_u = jax.vmap(self.to_unconstrained)
        from_u = jax.vmap(self.from_unconstrained)

        def block(u, rows, w, idx):
            row_labels = None if labels is None else labels[idx]
            resp = block_responsibilities(previous, rows, hard, row_labels)[0] * w[:, None]
            resp = lax.stop_gradient(resp)

            def q(u):
                logp = self.log_prob_components(from_u(u), rows)  # (B, K)
                qk = jnp.sum(jnp.where(resp > 0, resp * logp, 0.0), axis=0)
                return jnp.sum(qk), qk

            (_, qk), grad = jax.value_and_grad(q, has_aux=True)(u)
            return qk, grad

        def q_and_grad(u):  # Qₖ (K,) and ∇Q, summed block by block
            return blocks.sum_over_chunks(functools.partial(block, u), x, weights, chunk_size, axes)

        optimizer = optax.adam(optax.cosine_decay_schedule(self.learning_rate, self.n_steps))
        u0 = to_u(previous.params)
        q0, g0 = q_and_grad(u0)

        def step(_, carry):
            u, state, grad, best_u, best_q = carry
            updates, state = optimizer.update(jax.tree.map(jnp.negative, grad), state, u)
            u = optax.apply_updates(u, updates)
            q, grad = q_and_grad(u)
            better = q > best_q  # False for NaN
            return u, state, grad, where_components(better, u, best_u), jnp.where(better, q, best_q)

        init = (u0, optimizer.init(u0), g0, u0, q0)
        *_, best_u, best_q = lax.fori_loop(0, self.n_steps, step, init)
        new = from_u(best_u)
        accept = (best_q > q0) & finite_components(new)
        return where_components(accept, new, previous.params)
