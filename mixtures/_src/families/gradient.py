"""Generalised EM for families with no closed-form M-step.

A family that knows only its log-density and its parameter constraints
subclasses :class:`GradientFamily`. Its M-step maximises the expected
complete-data log-likelihood

    Q(θ) = Σₙ wₙ Σₖ rₙₖ log p(xₙ | θₖ),

with rₙₖ the responsibilities under the previous mixture, by an ascent in an
unconstrained parametrisation u = to_unconstrained(θ). Q and ∇Q are sums over
rows, so each trial point is one chunked pass over the data: every block of
rows recomputes its responsibilities from the previous mixture and adds the
value and gradient of its share of Q, so working memory stays
O(chunk × K × D).

Q is a sum of one independent term Qₖ per component, and each component
climbs on its own: from its current point it tries a step along Adam's
direction (the gradient scaled per coordinate by its running root mean
square); a step that raises Qₖ strictly is taken and the next one is longer,
one that does not is refused and the next is shorter. The M-step ends when
every component's step has shrunk below the resolution of its parameters
(a maximum of Qₖ to that resolution: no step of that length along the
ascent direction raises it) or after ``n_steps`` trials. The mixture's
log-likelihood therefore never decreases (a generalised EM step), and near
the end of a fit the M-step is a maximisation, not a fixed number of steps.
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
import numpy as np
import optax
from jax import lax

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture, block_responsibilities, finite_components, where_components

__all__ = ["GradientFamily"]

Params = Any
Unconstrained = Any

def default_m_step_tol(dtype) -> float:
    """The step length, relative to the parameters, at which a search M-step stops by default: √eps.

    1.5e-8 in float64, 3.5e-4 in float32: about the shortest step whose effect
    on Q rounding can still resolve near a smooth maximum, where a step of
    length s changes Q by about s² times its curvature.
    """
    return math.sqrt(float(jnp.finfo(dtype).eps))


_NEWTON_STEPS = 2  # Newton steps that finish each M-step
_NEWTON_MAX_PARAMETERS = 64  # ... when a component has at most this many parameters

_GROW = 1.5  # a step that raises Qₖ: the next one is this much longer
_SHRINK = 0.5  # one that does not: it is not taken, and the next is this much shorter


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
      learning_rate: the first trial step of each M-step, in units of the
        unconstrained parameters (keyword only). Each step along Adam's
        direction moves a coordinate by about the step length whatever the
        gradient's scale; a step that raises Qₖ makes the next one 1.5 times
        longer and a refused one makes it half as long, so the value sets
        only where the search starts.
      n_steps: the most trial steps per M-step, each one pass over the data
        (keyword only). The M-step usually ends earlier, when the steps
        have shrunk below ``m_step_tol``.
      m_step_tol: the M-step ends when every component's step is shorter
        than ``m_step_tol × (1 + the largest |u|)`` of that component
        (keyword only); None, the default, is √eps of the data's dtype
        (1.5e-8 in float64, 3.5e-4 in float32), about the shortest step whose
        effect on Q rounding can still resolve.

    Example:
      >>> import jax, numpy as np
      >>> from mixtures import GradientFamily
      >>> from mixtures import StudentT
      >>> family = StudentT(dof=4.0, learning_rate=0.1, n_steps=10)
      >>> isinstance(family, GradientFamily), family.n_steps
      (True, 10)
    """

    learning_rate: float = dataclasses.field(default=0.05, kw_only=True)
    n_steps: int = dataclasses.field(default=200, kw_only=True)
    m_step_tol: float | None = dataclasses.field(default=None, kw_only=True)

    m_step_needs_data: ClassVar[bool] = True

    def __post_init__(self):
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"`learning_rate` must be a positive real number; received {lr!r}.")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"`learning_rate` must be finite and positive; received {lr}.")
        object.__setattr__(self, "learning_rate", float(lr))
        object.__setattr__(self, "n_steps", checks.positive_int(self.n_steps, "n_steps"))
        tol = self.m_step_tol
        if tol is not None:
            if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
                raise TypeError(f"`m_step_tol` must be None or a positive real number; received {tol!r}.")
            if not (math.isfinite(tol) and 0 < tol < 1):
                raise ValueError(f"`m_step_tol` must be in (0, 1); received {tol}.")
            object.__setattr__(self, "m_step_tol", float(tol))

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

    def check_params(self, params) -> None:
        """Refuses a warm start whose parameters have no finite unconstrained coordinates.

        Runs :meth:`~mixtures.Family.check_params` first (the family's
        ``make_params``, if it takes the parameter fields by name), then
        requires :meth:`to_unconstrained` to be finite for every component
        (a negative scale whose coordinate is its logarithm, for instance, is
        refused).

        Example:
          >>> import numpy as np
          >>> from mixtures import StudentT, StudentTParams
          >>> StudentT().check_params(StudentTParams(np.zeros((1, 2)), np.ones((1, 2))))  # valid
        """
        super().check_params(params)
        u = jax.vmap(self.to_unconstrained)(jax.tree.map(jnp.asarray, params))
        finite = np.asarray(finite_components(u))
        if not finite.all():
            k = int(np.argmin(finite))
            raise ValueError(
                f"`init.params` must lie in the parameter space of {self!r}: component {k}'s parameters "
                "have no finite unconstrained coordinates (to_unconstrained gives NaN or ±inf there)."
            )

    # -- derived ------------------------------------------------------------

    @staticmethod
    def _newton_polish(q_and_grad, u, q, g, treedef, sizes):
        """Newton steps on each component's Qₖ from the search's end, each kept only if Qₖ does not fall.

        The search leaves each component within about the square root of
        rounding's share of Qₖ from the maximum, at a point that depends on
        which trials rounding let through. A Newton step from there lands
        within the square of that distance, wherever the search ended, so
        the result no longer depends on the order of the sums (chunk size,
        row order, devices). The Hessian of Qₖ (P × P, P parameters per
        component) comes from P forward-mode passes over the data; a
        component whose Hessian is not negative definite there (not at a
        smooth maximum, e.g. on a kink) keeps the search's point. ``g`` is ∇Q
        at ``u``, which the search already has.
        """
        leaves = jax.tree.leaves(u)
        k = leaves[0].shape[0]
        n = sum(sizes)
        offsets = np.cumsum([0, *sizes])

        def flat(tree):  # (K, P)
            return jnp.concatenate([leaf.reshape(k, -1) for leaf in jax.tree.leaves(tree)], axis=1)

        def unflat(v):
            parts = [v[:, a:b].reshape(leaf.shape) for a, b, leaf in zip(offsets[:-1], offsets[1:], leaves)]
            return jax.tree.unflatten(treedef, [p.astype(leaf.dtype) for p, leaf in zip(parts, leaves)])

        def gradient(tree):
            return q_and_grad(tree)[1]

        def polish(_, carry):
            u, q, g = carry

            def column(i, hessian):
                tangent = unflat(jnp.broadcast_to(jax.nn.one_hot(i, n, dtype=g.dtype), (k, n)))
                return hessian.at[:, :, i].set(flat(jax.jvp(gradient, (u,), (tangent,))[1]))

            hessian = lax.fori_loop(0, n, column, jnp.zeros((k, n, n), g.dtype))
            hessian = 0.5 * (hessian + jnp.swapaxes(hessian, 1, 2))
            factor = jnp.linalg.cholesky(-hessian)  # NaN unless −H is positive definite
            step = jax.vmap(lambda c, b: jax.scipy.linalg.cho_solve((c, True), b))(factor, g)
            proposal = unflat(flat(u) + step)
            (q_new, _), g_new = q_and_grad(proposal)
            keep = (q_new >= q) & jnp.all(jnp.isfinite(step), axis=1)
            g = jnp.where(keep[:, None], flat(g_new), g)
            return where_components(keep, proposal, u), jnp.where(keep, q_new, q), g

        u, q, _ = lax.fori_loop(0, _NEWTON_STEPS, polish, (u, q, flat(g)))
        return u, q

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
        """New parameters that maximise each component's Qₖ, never lowering it.

        Qₖ(θ) = Σₙ wₙ rₙₖ log p(xₙ | θ), with rₙₖ the responsibilities under
        ``previous`` (one-hot argmax ones if ``hard``). Each component climbs
        from ``previous``'s parameters by steps along Adam's direction,
        taking a step only if it raises Qₖ (then the next step is longer) and
        otherwise halving the step, until every component's step is below
        ``m_step_tol`` relative to its parameters or ``n_steps`` trials have
        run. Component k returns the point reached if its Qₖ beats Qₖ at
        ``previous`` and it is finite, and ``previous``'s parameters exactly
        otherwise. Each trial is one pass over row blocks of ``chunk_size``
        rows; jit- and vmap-compatible (``chunk_size`` and ``hard`` static).

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
                terms = jnp.where(resp > 0, resp * logp, 0.0)
                qk = jnp.sum(terms, axis=0)
                return jnp.sum(qk), (qk, jnp.sum(jnp.abs(terms), axis=0))

            (_, (qk, size)), grad = jax.value_and_grad(q, has_aux=True)(u)
            return (qk, size), grad

        def q_and_grad(u):  # Qₖ (K,) and ∇Q, summed block by block
            return blocks.sum_over_chunks(functools.partial(block, u), x, weights, chunk_size, axes)

        # The gradient scaled per coordinate by its running root mean square
        # (Adam without momentum: a direction that always points uphill from
        # the current point), one state per component, updated only when that
        # component moves.
        adam = optax.scale_by_adam(b1=0.0)
        u0 = to_u(previous.params)
        (q0, size0), g0 = q_and_grad(u0)
        d0, state0 = jax.vmap(adam.update)(g0, jax.vmap(adam.init)(u0))
        k = q0.shape[0]
        dtype = q0.dtype
        rtol = self.m_step_tol if self.m_step_tol is not None else default_m_step_tol(dtype)
        leaves, treedef = jax.tree.flatten(u0)
        magnitude = jnp.max(jnp.stack([jnp.max(jnp.abs(leaf.reshape(k, -1)), axis=1) for leaf in leaves]), axis=0)
        resolution = rtol * (1.0 + magnitude)[:, None]  # (K, 1) the shortest step worth trying
        # The blocks of coordinates a trial moves: all of them, then each leaf
        # alone (a density with kinks, such as |x − μ|, can stall a joint step).
        masks = np.eye(len(leaves), dtype=bool)
        masks = np.concatenate([np.ones((1, len(leaves)), bool), masks]) if len(leaves) > 1 else masks
        masks = jnp.asarray(masks, dtype)
        n_blocks = masks.shape[0]

        # A gain must exceed what rounding can add to Qₖ, Σₙ |wₙ rₙₖ log p| times
        # a few eps: then no decision depends on the order the sums are added
        # in (chunk size, devices, vmapped restarts).
        noise = 64.0 * jnp.finfo(dtype).eps

        def keep_going(carry):
            n, *_, step, _, _ = carry
            return (n < self.n_steps) & jnp.any(step >= resolution)

        def trial(carry):
            n, u, q, g, d, state, step, block, size = carry
            # The next block, in turn, that some component can still move.
            order = (block + 1 + jnp.arange(n_blocks)) % n_blocks
            block = order[jnp.argmax(jnp.any(step >= resolution, axis=0)[order])]
            length = step[:, block]  # (K,)
            moves = [
                a + (length * masks[block, i]).reshape((k,) + (1,) * (a.ndim - 1)) * b
                for i, (a, b) in enumerate(zip(jax.tree.leaves(u), jax.tree.leaves(d)))
            ]
            proposal = jax.tree.unflatten(treedef, moves)
            (q_new, size_new), g_new = q_and_grad(proposal)
            # False for NaN; a settled block stays put.
            better = (q_new - q > noise * size) & (length >= resolution[:, 0])
            d_new, state_new = jax.vmap(adam.update)(g_new, state)
            u = where_components(better, proposal, u)
            d = where_components(better, d_new, d)
            g = where_components(better, g_new, g)
            state = where_components(better, state_new, state)
            step = step.at[:, block].set(jnp.where(better, length * _GROW, length * _SHRINK))
            q, size = jnp.where(better, q_new, q), jnp.where(better, size_new, size)
            return n + 1, u, q, g, d, state, step, block, size

        step0 = jnp.full((k, n_blocks), self.learning_rate, dtype)
        init = (0, u0, q0, g0, d0, state0, step0, n_blocks - 1, size0)
        _, best_u, best_q, best_g, *_ = lax.while_loop(keep_going, trial, init)
        sizes = [int(np.prod(leaf.shape[1:])) for leaf in leaves]
        if sum(sizes) <= _NEWTON_MAX_PARAMETERS:
            best_u, best_q = self._newton_polish(q_and_grad, best_u, best_q, best_g, treedef, sizes)
        new = from_u(best_u)
        accept = (best_q > q0) & finite_components(new)
        return where_components(accept, new, previous.params)
