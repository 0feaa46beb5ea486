"""The contract between the EM engine and a family of component distributions.

The engine never looks inside a family. It asks for log-densities of a block of
rows under every component, for responsibility-weighted sufficient statistics
of that block, and for the parameters that maximise the expected complete-data
log-likelihood given the summed statistics. Everything else (chunking, the
fit loop, mixing weights, empty components) is the engine's.

A family is a frozen dataclass holding static configuration only (it is part of
the compiled program's identity). Its parameters and statistics are pytrees of
arrays (NamedTuples) whose every leaf has a leading component axis of size K.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar

import jax
import numpy as np

from mixtures._src.core.blocks import Axes
from mixtures._src.core.posterior import Posterior

__all__ = ["Family"]

Params = Any
Stats = Any


class Family(abc.ABC):
    """Abstract base class of component families.

    A subclass is a ``@dataclasses.dataclass(frozen=True)`` and implements:

    * :meth:`log_prob` for one observation and one component;
    * :meth:`accumulate`: responsibility-weighted sufficient statistics of a
      block of rows, summed over the rows, one entry per component;
    * :meth:`m_step`: new parameters from the summed statistics;
    * :meth:`sample` for one observation of one component;
    * :meth:`init_params`: components placed at K given data rows;
    * :meth:`n_features`, :meth:`n_free_parameters` and, optionally,
      :meth:`check_data`.

    :meth:`log_prob_components` has a default (``vmap`` of :meth:`log_prob`
    over rows and components); a family overrides it only with a faster
    batched form that computes the same values.

    :meth:`transport_stats` (for online EM) defaults to returning the
    statistics unchanged; a family whose :meth:`accumulate` depends on the
    current parameters overrides it.

    Optional, for speed: :meth:`fast_sums`, the one hook through which a
    family that has a faster way to compute a whole E-step pass (the
    Gaussian's whitened residuals and matrix-product form) provides it. The
    default returns None and the engine runs its generic pass over row
    blocks: :meth:`log_prob_components`, responsibilities, :meth:`accumulate`.

    A family whose M-step needs the data, not summed statistics (generalised
    EM by gradient steps, :class:`~mixtures.GradientFamily`), sets the class
    attribute :attr:`m_step_needs_data` and implements
    ``m_step_from_data``; the engine calls that instead of :meth:`m_step`,
    and the drivers that only have summed statistics (``fit_stream``,
    ``fit_online``) refuse such a family.

    Optional, for MAP-EM with a conjugate prior on the component parameters
    (``mx.fit(..., prior=...)``): :meth:`check_prior`, :meth:`default_prior`,
    :meth:`map_step` and :meth:`log_prior`. Without them the family fits by
    maximum likelihood, and a component prior is rejected on the host.

    Optional, for variational Bayes (:func:`mixtures.fit_variational`): with
    :attr:`conjugate` set, :meth:`posterior_update`, :meth:`expected_params`,
    :meth:`posterior_kl`, :meth:`posterior_mean` and :meth:`predictive_log_prob`,
    over the same prior type as MAP-EM (its posterior is of the same type,
    with a leading component axis).
    """

    conjugate: ClassVar[bool] = False
    """Whether the family implements the variational methods over its conjugate prior.

    Mean-field variational Bayes then needs nothing else from the family:
    the E-step is the ordinary one under :meth:`expected_params` (component
    log-densities plus a per-component offset), the statistics are
    :meth:`accumulate`'s, and the posterior is the prior plus the statistics
    (:meth:`posterior_update`).
    """

    m_step_needs_data: ClassVar[bool] = False
    """Whether the M-step needs the rows (``m_step_from_data``) rather than summed statistics."""

    support: ClassVar[str] = "real"
    """The measure :meth:`log_prob` is a log-density with respect to.

    "real": Lebesgue measure on the part of ℝᴰ that :meth:`check_data`
    accepts (a continuous family); "integer": counting measure on the integer
    points it accepts (a discrete family); "sphere": surface measure on the
    unit sphere in ℝᴰ. :func:`mixtures.testing.check_family` integrates or
    sums the density against it to check that it is normalised.
    """

    @abc.abstractmethod
    def log_prob(self, params: Params, x: jax.Array) -> jax.Array:
        """Log-density of one observation under one component.

        Args:
          params: one component's parameters (the leading K axis removed).
          x: one observation, shape (D,).

        Returns:
          A scalar.

        Example:
          >>> import jax, numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> p = g.make_params(np.zeros((1, 1)), np.ones(1))
          >>> one = jax.tree.map(lambda a: a[0], p)  # one component
          >>> round(float(g.log_prob(one, np.zeros(1))), 4)
          -0.9189
        """

    def log_prob_components(self, params: Params, x: jax.Array) -> jax.Array:
        """Log-densities of a block of rows under every component.

        Args:
          params: parameters with a leading component axis of size K.
          x: rows, shape (B, D).

        Returns:
          Array of shape (B, K) with entry [n, k] = log p(xₙ | θₖ).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> p = g.make_params(np.zeros((3, 2)), np.ones((3, 2)))
          >>> g.log_prob_components(p, np.zeros((5, 2))).shape
          (5, 3)
        """
        over_components = jax.vmap(self.log_prob, in_axes=(0, None))
        return jax.vmap(over_components, in_axes=(None, 0))(params, x)

    @abc.abstractmethod
    def accumulate(self, params: Params, x: jax.Array, resp: jax.Array) -> Stats:
        """Responsibility-weighted sufficient statistics of a block of rows.

        The result must be additive over rows: the statistics of two blocks
        are the leaf-wise sum of each block's statistics.

        Args:
          params: the current parameters (leading axis K); a family may use
            them as a shift that keeps the sums accurate, as the Gaussian
            family does with the current means.
          x: rows, shape (B, D).
          resp: responsibilities times row weights, shape (B, K).

        Returns:
          A pytree whose leaves have a leading axis of size K.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> p = g.make_params(np.zeros((3, 2)), np.ones((3, 2)))
          >>> stats = g.accumulate(p, np.ones((5, 2)), np.full((5, 3), 1 / 3))
          >>> stats.first.shape, stats.second.shape
          ((3, 2), (3, 2))
        """

    def fast_sums(self, params: Params, x: jax.Array, weights, posterior: Posterior, *, chunk_size: int, axes: Axes, mode: str):
        """Optional: a whole E-step pass over the rows computed the family's faster way, or None (the default).

        The engine's generic pass computes, block by block,
        :meth:`log_prob_components`, the responsibilities (``posterior``) and
        :meth:`accumulate`. A family that can do the same work faster
        (sharing intermediate values between log-densities and statistics,
        or turning both into large matrix products) returns the same
        :class:`~mixtures.engine.Sums`, up to rounding, from here; its own
        tests compare the two. The engine calls this hook only where
        ``mode`` is not "never".

        Args:
          params: parameters, leading axis K.
          x: (N, D) rows (this device's, when the rows are split over devices).
          weights: (N,) row weights or None.
          posterior: turns a block's (B, K) log-densities and its row indices
            into responsibilities and per-row log-likelihood terms (labels,
            hard assignments and the mixing weights are inside it).
          chunk_size: rows per block (memory O(chunk_size × K × D)).
          axes: the named axes the pass is traced under; sums over rows go
            through :func:`~mixtures._src.core.blocks.sum_over_chunks` with
            these axes.
          mode: "auto" (the family chooses what repays its compilation),
            "always" (its fastest accurate path whatever the size, for
            tests) or "once" (a pass that runs once per compiled program,
            such as the final log-likelihood: one compiled path).

        Returns:
          A :class:`~mixtures.engine.Sums`, or None for the generic pass.
        """
        del params, x, weights, posterior, chunk_size, axes, mode
        return None

    # -- optional: rows with missing entries (``missing="marginalize"``) ----------------------

    def observed_sums(self, params: Params, x: jax.Array, weights: jax.Array, index: jax.Array, posterior: Posterior, max_missing: int):
        """Optional: one block's sums over rows with missing entries, computed the family's faster way, or None (the default).

        The engine's generic block calls :meth:`log_prob_observed`, turns the
        densities into responsibilities (``posterior``) and calls
        :meth:`accumulate_observed`. A family that shares work between the
        two (the Gaussian's conditional moments) returns the same
        :class:`~mixtures.engine.Sums` from here.

        Args:
          params: parameters, leading axis K.
          x: (B, D) rows, NaN at the missing entries.
          weights: (B,) row weights (0 for rows that must not count).
          index: (B,) the rows' indices in the data.
          posterior: turns (B, K) log-densities and ``index`` into
            responsibilities and log-likelihood terms.
          max_missing: as for :meth:`log_prob_observed`.

        Returns:
          A :class:`~mixtures.engine.Sums`, or None.
        """
        del params, x, weights, index, posterior, max_missing
        return None

    handles_missing: ClassVar[bool] = False
    """Whether the family implements :meth:`log_prob_observed` and :meth:`accumulate_observed`.

    With it, the fitting functions and a mixture's methods take rows with
    missing entries (NaN) under ``missing="marginalize"``: the E-step uses
    the density of each row's observed entries, and the M-step the
    statistics' conditional expectation given them, so EM climbs the
    observed-data likelihood (exact under missing-at-random). Without it,
    ``missing="marginalize"`` is refused on the host.
    """

    def log_prob_observed(self, params: Params, x: jax.Array, max_missing: int) -> jax.Array:
        """Log-densities of each row's observed entries under every component.

        Args:
          params: parameters with a leading component axis of size K.
          x: rows, shape (B, D), NaN at the missing entries (a row with
            nothing observed has log-density 0).
          max_missing: static, at least the number of missing entries of any
            row of the data.

        Returns:
          Array of shape (B, K) with entry [n, k] = log p(xₙ,ₒ | θₖ), the
          marginal density of row n's observed entries.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> p = g.make_params(np.zeros((1, 2)), np.array([[[1.0, 0.5], [0.5, 2.0]]]))
          >>> x = np.array([[0.0, np.nan]])
          >>> round(float(g.log_prob_observed(p, x, 1)[0, 0]), 4)  # N(0; 0, 1): -log √(2π)
          -0.9189
        """
        del params, x, max_missing
        raise NotImplementedError(f"{type(self).__name__} does not take rows with missing entries.")

    def accumulate_observed(self, params: Params, x: jax.Array, resp: jax.Array, max_missing: int) -> Stats:
        """The statistics of :meth:`accumulate`, their expectation given each row's observed entries.

        Each row's statistics under component k are replaced by their
        conditional expectation given its observed entries and zₙ = k, under
        ``params`` (the current parameters): the M-step of these is the
        exact EM step for the observed-data likelihood.

        Args:
          params: the current parameters (leading axis K).
          x: rows, shape (B, D), NaN at the missing entries.
          resp: responsibilities times row weights, shape (B, K).
          max_missing: as for :meth:`log_prob_observed`.

        Returns:
          Statistics with the structure and shapes :meth:`accumulate` returns.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> p = g.make_params(np.zeros((1, 2)), np.ones((1, 2)))
          >>> s = g.accumulate_observed(p, np.array([[2.0, np.nan]]), np.ones((1, 1)), 1)
          >>> s.first.tolist(), s.second.tolist()  # the missing entry: E[y] = 0, E[y²] = 1
          ([[2.0, 0.0]], [[4.0, 1.0]])
        """
        del params, x, resp, max_missing
        raise NotImplementedError(f"{type(self).__name__} does not take rows with missing entries.")

    @abc.abstractmethod
    def m_step(self, stats: Stats, counts: jax.Array, previous: Params) -> Params:
        """Parameters maximising the expected complete-data log-likelihood.

        Args:
          stats: statistics from :meth:`accumulate`, summed over all rows.
          counts: summed responsibilities, shape (K,).
          previous: the parameters the statistics were accumulated under.

        Returns:
          New parameters, same structure and shapes as ``previous``. A
          component with (near) zero count may return anything finite or not:
          the engine keeps ``previous`` for it.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical", reg_covar=0.0)
          >>> p = g.make_params(np.zeros((1, 1)), np.ones(1))
          >>> x = np.array([[1.0], [3.0]])
          >>> new = g.m_step(g.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p)
          >>> new.means.round(6).tolist(), new.covariances.round(6).tolist()
          ([[2.0]], [1.0])
        """

    def transport_stats(self, stats: Stats, counts: jax.Array, old: Params, new: Params) -> Stats:
        """Statistics accumulated under ``old`` parameters, re-expressed as if accumulated under ``new``.

        Online EM (:mod:`mixtures.online`) keeps running statistics across
        M-steps; a family whose :meth:`accumulate` depends on the parameters
        (the Gaussian's whitened frame) moves them into the new parameters'
        frame after every M-step. The result must equal, for every set of
        rows and responsibilities, ``accumulate(new, x, resp)`` given
        ``accumulate(old, x, resp)`` and ``counts`` = Σₙ respₙₖ. It must be
        linear in (``counts``, ``stats``) jointly and treat components
        independently (row k of the result depends on row k of the inputs
        only): online EM stacks several statistics along the component axis
        and transports them in one call.

        The default returns ``stats`` unchanged, which is exact for statistics
        that do not depend on the parameters (every
        :class:`~mixtures.ExponentialFamily`). A family whose statistics do
        must override it.

        Args:
          stats: statistics from :meth:`accumulate` under ``old``.
          counts: (K,) summed responsibilities the statistics were taken with.
          old: the parameters the statistics were accumulated under.
          new: the parameters to re-express them under.

        Returns:
          Statistics with the structure and shapes of ``stats``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> f = mx.Poisson()
          >>> x = np.array([[1.0], [3.0]])
          >>> stats = f.accumulate(f.make_params([[1.0]]), x, np.ones((2, 1)))
          >>> f.transport_stats(stats, np.array([2.0]), None, None).sum_t.tolist()  # Σ T(x), whatever θ
          [[4.0]]
        """
        del counts, old, new
        return stats

    @abc.abstractmethod
    def sample(self, params: Params, key: jax.Array) -> jax.Array:
        """Draws one observation, shape (D,), from one component.

        Example:
          >>> import jax, numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> one = jax.tree.map(lambda a: a[0], g.make_params(np.zeros((1, 3)), np.eye(3)[None]))
          >>> g.sample(one, jax.random.key(0)).shape
          (3,)
        """

    @abc.abstractmethod
    def init_params(self, points: jax.Array, x: jax.Array) -> Params:
        """Parameters of K components located at the given rows.

        Args:
          points: K rows of the data, shape (K, D), one per component.
          x: the whole data set, shape (N, D), for scale.

        Returns:
          Parameters with a leading axis of size K, one component at each
          point; the engine refines them by one hard-assignment EM step.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> x = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]])
          >>> mx.Gaussian("diag").init_params(x[:2], x).means.tolist()
          [[0.0, 0.0], [1.0, 2.0]]
        """

    @abc.abstractmethod
    def n_features(self, params: Params) -> int:
        """Number of data columns D the parameters describe.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> g.n_features(g.make_params(np.zeros((2, 4)), np.ones((2, 4))))
          4
        """

    @abc.abstractmethod
    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free parameters of K components' parameters (mixing weights excluded).

        Used by the information criteria; parameters shared between
        components (a tied covariance) count once.

        Example:
          >>> import mixtures as mx
          >>> mx.Gaussian("diag").n_free_parameters(3, 2)  # 3 means and 3 variances of length 2
          12
        """

    # -- optional: conjugate priors for MAP-EM (see docs/priors.md) -----------

    def check_prior(self, prior: Any, x: jax.Array) -> Any:
        """Checks a prior on the component parameters on the host; returns it in ``x``'s dtype.

        A family that supports priors overrides this method together with
        :meth:`default_prior`, :meth:`map_step` and :meth:`log_prior`; the
        default raises ``TypeError``, so :func:`mixtures.fit` rejects a
        component prior for such a family before compiling anything.

        Args:
          prior: the component prior given to :func:`mixtures.fit`.
          x: the (N, D) data, in the compute dtype.

        Returns:
          The prior as a pytree of arrays of ``x``'s dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> p = mx.Gaussian("spherical").check_prior(GaussianPrior(np.zeros(1), 0.01, 3.0, 1.0), np.zeros((4, 1)))
          >>> p.scale.dtype == np.zeros((4, 1)).dtype
          True
        """
        del prior, x
        raise TypeError(
            f"`prior`: {type(self).__name__} has no conjugate prior on its component parameters; "
            "pass prior=None, or a mixtures.DirichletPrior for the mixing weights alone."
        )

    def default_prior(self, x: np.ndarray, n_components: int, sample_weight=None) -> Any:
        """The family's data-driven default component prior (``fit(prior="default")``), host-side.

        Args:
          x: (N, D) data.
          n_components: K.
          sample_weight: optional (N,) non-negative row weights.

        Returns:
          A prior accepted by :meth:`check_prior`.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> p = mx.Gaussian("full").default_prior(np.array([[0.0], [2.0]]), 1)
          >>> p.mean.tolist(), p.scale.tolist()
          ([1.0], [[1.0]])
        """
        del x, n_components, sample_weight
        raise TypeError(
            f"`prior`: {type(self).__name__} has no default prior on its component parameters; "
            "pass prior=None, or a mixtures.DirichletPrior for the mixing weights alone."
        )

    def map_step(self, stats: Stats, counts: jax.Array, previous: Params, prior: Any, weights: jax.Array) -> Params:
        """Parameters maximising the expected complete-data log-likelihood plus the log prior.

        The MAP counterpart of :meth:`m_step`; called by the engine only when
        a component prior is given.

        Args:
          stats: statistics from :meth:`accumulate`, summed over all rows.
          counts: summed responsibilities, shape (K,).
          previous: the parameters the statistics were accumulated under.
          prior: the component prior, as returned by :meth:`check_prior`.
          weights: (K,) current mixing weights; a component with weight 0 is
            switched off (not part of the model, excluded from the prior).

        Returns:
          New parameters, same structure and shapes as ``previous``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> g = mx.Gaussian("identity")
          >>> p = g.make_params(np.zeros((1, 1)))
          >>> prior = GaussianPrior(np.array([0.0]), np.array(2.0), np.array(3.0), np.array(1.0))
          >>> x = np.array([[3.0], [3.0]])
          >>> g.map_step(g.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p, prior, np.ones(1)).means.tolist()
          [[1.5]]
        """
        del stats, counts, previous, prior, weights
        raise NotImplementedError(f"{type(self).__name__} does not implement map_step.")

    def log_prior(self, params: Params, prior: Any, weights: jax.Array) -> jax.Array:
        """Log prior density of the switched-on components' parameters, up to a constant.

        The constant depends on the prior only, never on ``params``. Called by
        the engine only when a component prior is given.

        Args:
          params: parameters with a leading component axis K.
          prior: the component prior, as returned by :meth:`check_prior`.
          weights: (K,) mixing weights; components with weight 0 are left out.

        Returns:
          A scalar.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import GaussianPrior
          >>> g = mx.Gaussian("identity")
          >>> prior = GaussianPrior(np.array([0.0]), np.array(2.0), np.array(3.0), np.array(1.0))
          >>> float(g.log_prior(g.make_params(np.array([[1.0]])), prior, np.ones(1)))  # −κ₀/2 ‖μ − μ₀‖²
          -1.0
        """
        del params, prior, weights
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prior.")

    # -- variational Bayes (optional; see `conjugate`) ----------------------------

    def default_variational_prior(self, x: np.ndarray, n_components: int, sample_weight=None) -> Any:
        """The component prior :func:`mixtures.fit_variational` uses by default; :meth:`default_prior` unless overridden.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Gaussian("diag").default_variational_prior(np.array([[0.0], [2.0]]), 1).mean.tolist()
          [1.0]
        """
        return self.default_prior(x, n_components, sample_weight=sample_weight)

    def posterior_update(self, stats: Stats, counts: jax.Array, frame: Params, prior: Any) -> Any:
        """The conjugate posterior of every component given the summed statistics.

        Args:
          stats: statistics from :meth:`accumulate` (or the family's fast
            pass), summed over all rows.
          counts: summed responsibilities, shape (K,).
          frame: the parameters the statistics were accumulated under (a
            family whose statistics are relative to them, as the Gaussian's,
            reads them back).
          prior: the component prior, as returned by :meth:`check_prior`.

        Returns:
          The posterior: the prior's type with a leading axis K on every leaf.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> f, x = mx.Poisson(), np.array([[2.0], [4.0]])
          >>> p = f.make_params(np.ones((1, 1)))
          >>> post = f.posterior_update(f.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p, ConjugatePrior(1.0, np.array([3.0])))
          >>> post.pseudo_count.tolist(), post.mean.tolist()  # 1 + 2; (1·3 + 6) / 3
          ([3.0], [[3.0]])
        """
        del stats, counts, frame, prior
        raise NotImplementedError(f"{type(self).__name__} does not implement variational Bayes.")

    def expected_params(self, posterior: Any) -> tuple[Params, jax.Array]:
        """Parameters θ̃ₖ and offsets cₖ with E_q[log p(x | θₖ)] = log p(x | θ̃ₖ) + cₖ for every x.

        The variational E-step is then the ordinary one with the
        log-weights E_q[log πₖ] + cₖ: one code path for EM and VB.

        Args:
          posterior: the posterior from :meth:`posterior_update` (leading axis K).

        Returns:
          ``(params, offsets)``: parameters with a leading axis K, and (K,) offsets.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> params, offsets = mx.Poisson().expected_params(ConjugatePrior(np.array([2.0]), np.array([[3.0]])))
          >>> params.rates.round(4).tolist(), offsets.round(4).tolist()  # exp E[log λ]; E[λ] − exp E[log λ]
          ([[2.7538]], [-0.2462])
        """
        del posterior
        raise NotImplementedError(f"{type(self).__name__} does not implement variational Bayes.")

    def posterior_kl(self, posterior: Any, prior: Any) -> jax.Array:
        """KL(q(θ) ‖ p(θ)) summed over the components (a parameter shared by all counted once); a scalar.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> prior = ConjugatePrior(np.array(2.0), np.array([3.0]))
          >>> float(mx.Poisson().posterior_kl(ConjugatePrior(np.array([2.0]), np.array([[3.0]])), prior))
          0.0
        """
        del posterior, prior
        raise NotImplementedError(f"{type(self).__name__} does not implement variational Bayes.")

    def posterior_mean(self, posterior: Any) -> Params:
        """Point parameters summarising the posterior (the family documents which: a posterior mean).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> mx.Poisson().posterior_mean(ConjugatePrior(np.array([2.0]), np.array([[3.0]]))).rates.tolist()
          [[3.0]]
        """
        del posterior
        raise NotImplementedError(f"{type(self).__name__} does not implement variational Bayes.")

    def predictive_log_prob(self, posterior: Any, x: jax.Array) -> jax.Array:
        """(B, K) log posterior-predictive densities ∫ p(xₙ | θ) q(θₖ) dθ of rows x (B, D).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures.priors import ConjugatePrior
          >>> post = ConjugatePrior(np.array([1.0]), np.array([[1.0]]))  # rate ~ Gamma(1, 1)
          >>> np.exp(mx.Poisson().predictive_log_prob(post, np.array([[0.0], [1.0]]))).round(4).tolist()  # ½, ¼
          [[0.5], [0.25]]
        """
        del posterior, x
        raise NotImplementedError(f"{type(self).__name__} does not implement variational Bayes.")

    def check_params(self, params) -> None:
        """Raises ``ValueError`` if a warm start's ``params`` (host arrays, leading axis K) lie outside the parameter space.

        ``fit`` calls it on a warm start's parameters before compiling. The
        default, for a family whose ``make_params`` takes exactly the fields
        of its parameter tuple by name (every built-in exponential family),
        runs that ``make_params``; otherwise it accepts any finite values.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Poisson().check_params(mx.PoissonParams(np.array([[-1.0]])))
          Traceback (most recent call last):
          ...
          ValueError: `init.params` must be valid parameters of Poisson(min_rate=1e-06): `rates` must be finite and positive; received [[-1.]].
        """
        make_params = getattr(self, "make_params", None)
        fields = getattr(params, "_fields", None)
        if make_params is None or fields is None or tuple(inspect.signature(make_params).parameters) != fields:
            return
        try:
            make_params(**params._asdict())
        except ValueError as err:
            raise ValueError(f"`init.params` must be valid parameters of {self!r}: {err}") from None

    def check_data(self, x: np.ndarray) -> None:
        """Raises ``ValueError`` if ``x`` (host array, (N, D)) is outside the family's domain.

        The default accepts any finite real data.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Gaussian().check_data(np.zeros((3, 2)))  # any finite data is in the domain
        """
        del x

    def check_methods(self, x: np.ndarray) -> None:
        """Raises ``TypeError`` or ``ValueError`` if the family's own methods fail on data ``x``, before compiling.

        Every fitting function calls it after :meth:`check_data`, so that a
        mistake in a family of one's own is named on the host instead of
        surfacing as NaN from inside the compiled fit. The default matters only
        for a family that states no domain (does not override
        :meth:`check_data`): it evaluates :meth:`log_prob_components` on every
        row at the parameters :meth:`init_params` makes from the first row, and
        refuses the data if any row's log-density is NaN there. Families with
        more structure check more (:class:`~mixtures.ExponentialFamily`: the
        shapes of T(x), log h(x) and A(η), and that A is finite where the
        Newton solve starts).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Gaussian().check_methods(np.zeros((3, 2)))  # its methods work on this data
        """
        if type(self).check_data is not Family.check_data:
            return
        rows = np.asarray(x)
        params = self.init_params(jax.numpy.asarray(rows[:1]), jax.numpy.asarray(rows[: min(len(rows), 4096)]))
        for start in range(0, len(rows), 4096):
            block = np.asarray(self.log_prob_components(params, jax.numpy.asarray(rows[start : start + 4096])))
            bad = np.flatnonzero(np.isnan(block).any(axis=1))
            if len(bad):
                row = start + int(bad[0])
                raise ValueError(
                    f"row {row} of `x` ({rows[row].tolist()}) has a NaN log-density under {type(self).__name__}: "
                    "it lies outside the family's domain, or log_prob is undefined there. A family states its "
                    "domain with check_data, which then refuses such rows by name."
                )

    # -- describing itself to the front ends: save/load, figures, the command line ---------------
    #
    # Host-side helpers with defaults that suit most families; none is called by the engine.

    density_on_the_plane = True
    """Whether :meth:`log_prob` is a density with respect to area for data of real columns.

    False for discrete families and for those on a sphere; :mod:`mixtures.plot`
    draws density contours only when it is True, and its histogram of one
    column draws probability masses at the integers when it is False.
    """

    independent_columns = False
    """Whether every parameter leaf is (K, D), column j describing data column j alone.

    Then the columns are independent given the component, and the default
    :meth:`marginal` keeps the chosen columns of every leaf.
    """

    def label(self) -> str:
        """A short human name of the family, as figures and the command line show it.

        The default is the class name; a family with a configuration that
        changes what it models adds it ("Gaussian (diag)").

        Example:
          >>> import mixtures as mx
          >>> mx.Poisson().label(), mx.Gaussian("diag").label()
          ('Poisson', 'Gaussian (diag)')
        """
        return type(self).__name__

    def params_layout(self, n_components: int, n_features: int) -> Params:
        """The structure, shapes and dtypes of K components' parameters on D columns, without computing them.

        ``mixtures.load`` compares a file's arrays with it and builds the
        parameters in its structure (so the parameters' NamedTuple classes
        come from here). The default traces :meth:`init_params` abstractly
        (``jax.eval_shape``) on float32 inputs of shape (K, D); a family
        whose parameters need more than D columns to exist overrides it to
        raise ``ValueError``.

        Args:
          n_components: K ≥ 1.
          n_features: D, what :meth:`n_features` gives for such parameters.

        Returns:
          A pytree of ``jax.ShapeDtypeStruct`` in the structure of the parameters.

        Raises:
          ValueError: if the family has no parameters for D columns.

        Example:
          >>> import mixtures as mx
          >>> layout = mx.Gaussian("diag").params_layout(3, 2)
          >>> type(layout).__name__, layout.means.shape, layout.precisions_cholesky.shape
          ('GaussianParams', (3, 2), (3, 2))
        """
        rows = jax.ShapeDtypeStruct((n_components, n_features), np.float32)
        return jax.eval_shape(self.init_params, rows, rows)

    def marginal(self, params: Params, columns) -> tuple[Family, Params] | None:
        """The family and parameters of the components' marginal over some columns, or None if unknown.

        The default knows the marginal of families with
        :attr:`independent_columns`: the same family, each leaf's chosen
        columns. :mod:`mixtures.plot` draws density contours of the marginal
        over two columns, and ellipses when it is Gaussian; its histogram of
        one column of wider data draws the marginal over that column.

        Args:
          params: concrete parameters with a leading component axis K.
          columns: a sequence of distinct column indices, in the order wanted.

        Returns:
          ``(family, params)`` of the marginal on ``len(columns)`` columns, or None.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> f = mx.Exponential()
          >>> family, params = f.marginal(f.make_params(np.array([[1.0, 2.0, 3.0]])), (2, 0))
          >>> family, params.rates.tolist()
          (Exponential(), [[3.0, 1.0]])
        """
        if not self.independent_columns:
            return None
        chosen = np.asarray(list(columns), dtype=np.intp)
        return self, jax.tree.map(lambda leaf: leaf[:, chosen], params)

    def extent(self, params: Params) -> tuple[np.ndarray, np.ndarray] | None:
        """(K, D) centres and (K, D) spreads of the components, for a figure's default limits; None if unknown.

        :mod:`mixtures.plot` spans centre ± 3 spreads when it is given no
        data. The default is None (figures then need the data for limits).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> centres, spreads = g.extent(g.make_params(np.zeros((1, 2)), np.array([[4.0, 9.0]])))
          >>> centres.tolist(), spreads.round(6).tolist()
          ([[0.0, 0.0]], [[2.0, 3.0]])
        """
        del params
        return None

    def parameter_table(self, params: Params, columns) -> list[tuple[str, np.ndarray]]:
        """Rows of a readable table of the components' parameters: ``(label, (K,) float64 values)``.

        The command line prints it (one column per component). The default
        shows every leaf of a NamedTuple of parameters: a (K, D) leaf as one
        row per data column, labelled with the field's name in the singular
        and the column's name ("rate x1"); a (K,) leaf as one row; any other
        leaf flattened per component.

        Args:
          params: concrete parameters with a leading component axis K.
          columns: the D data columns' names.

        Returns:
          A list of ``(label, values)``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> f = mx.Gamma()
          >>> rows = f.parameter_table(f.make_params(np.array([[2.0], [3.0]]), np.array([[1.0], [0.5]])), ["t"])
          >>> [(label, values.tolist()) for label, values in rows]
          [('shape t', [2.0, 3.0]), ('rate t', [1.0, 0.5])]
        """
        fields = getattr(params, "_fields", None)
        if fields is None:
            named = [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)]
        else:
            named = [(name[:-1] if name.endswith("s") else name, leaf) for name, leaf in zip(fields, params)]
        rows = []
        for name, leaf in named:
            leaf = np.asarray(leaf, np.float64)
            if leaf.ndim == 2 and leaf.shape[1] == len(columns):
                rows += [(f"{name} {c}", leaf[:, j]) for j, c in enumerate(columns)]
            elif leaf.ndim == 1:
                rows.append((name, leaf))
            else:
                flat = leaf.reshape(leaf.shape[0], -1)
                rows += [(f"{name}[{i}]", flat[:, i]) for i in range(flat.shape[1])]
        return rows

    @classmethod
    def from_data(cls, x: np.ndarray, **config) -> Family:
        """The family configured by ``config`` (dataclass fields by name), fields left out chosen for the data.

        ``mixtures fit --family NAME`` builds its family with it from the
        command line's options. The default is ``cls(**config)``: the fields
        left out take their defaults.

        Args:
          x: (N, D) float64 host data.
          **config: dataclass fields of ``cls``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> mx.Poisson.from_data(np.ones((3, 2)), min_rate=1e-3)
          Poisson(min_rate=0.001)
        """
        del x
        return cls(**config)
