"""The fitted object: mixing weights plus component parameters of one family."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.core import incomplete
from mixtures._src.core.family import Family
from mixtures._src.core.posterior import responsibilities_from_log_probs

__all__ = ["Mixture"]


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["weights", "params"], meta_fields=["family"]
)
@dataclasses.dataclass(frozen=True, eq=False)
class Mixture:
    """A finite mixture p(x) = Σₖ πₖ p(x | θₖ); a pytree (the family is static).

    Attributes:
      weights: (K,) mixing weights πₖ, non-negative, summing to one.
      params: the family's parameters, every leaf with a leading axis K.
      family: the component family (static configuration).

    Construction checks the shapes: ``weights`` must have at least one axis,
    and every parameter leaf must start with the weights' shape (K, or
    (R, K) for R mixtures batched by ``jax.vmap``), else ``ValueError``;
    leaves without a shape (placeholders JAX puts in a pytree) are not
    checked. The values (weights summing to one, parameters inside the
    family's space) are checked where a mixture enters from outside:
    :func:`mixtures.load`, :func:`mixtures.save` and warm starts of
    :func:`mixtures.fit`.

    Every method that takes rows (:meth:`log_prob`, :meth:`responsibilities`,
    :meth:`predict`, :meth:`score`, :meth:`bic`, :meth:`aic`, :meth:`icl`)
    checks concrete input on the host as :func:`mixtures.fit` does: shape,
    finite values, and the family's domain (``family.check_data``: Poisson
    counts must be non-negative integers, ...), raising ``ValueError``
    before anything is compiled. Traced input (inside ``jax.jit`` or
    ``jax.vmap``) has only its shape checked: its values are not known.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> g = mx.Gaussian("spherical")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-2.0], [2.0]]), np.ones(2)), g)
      >>> m.n_components, m.n_features
      (2, 1)
    """

    weights: jax.Array
    params: Any
    family: Family

    def __post_init__(self):
        if not isinstance(self.family, Family):
            raise TypeError(f"`family` must be a mixtures.Family; received {self.family!r}.")
        if isinstance(self.weights, (np.ndarray, list, tuple)):
            weights = np.asarray(self.weights)
            if weights.dtype == np.bool_ or not (
                jnp.issubdtype(weights.dtype, jnp.floating) or jnp.issubdtype(weights.dtype, jnp.integer)
            ):
                raise TypeError(f"`weights` must hold real numbers; received dtype {weights.dtype}.")
            object.__setattr__(self, "weights", jnp.asarray(weights, checks.float_dtype_for(weights.dtype)))
        self._check_shapes()

    def _check_shapes(self) -> None:
        shape = getattr(self.weights, "shape", None)
        leaves = jax.tree.leaves(self.params)
        if not isinstance(shape, tuple) or not all(isinstance(getattr(a, "shape", None), tuple) for a in leaves):
            return  # a placeholder pytree (jax.vmap's in_axes, tree prefixes): nothing to check
        if len(shape) == 0:
            raise ValueError("`weights` must have shape (K,), one weight per component; received a scalar.")
        for path, leaf in jax.tree_util.tree_leaves_with_path(self.params):
            if tuple(leaf.shape[: len(shape)]) != shape:
                where = jax.tree_util.keystr(path)
                raise ValueError(
                    f"`weights` has shape {shape}, but `params{where}` has shape {tuple(leaf.shape)}: every "
                    f"parameter leaf must have a leading axis of K = {shape[-1]} components, one per weight."
                )

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.shape[-1]

    @property
    def n_features(self) -> int:
        """Number of data columns D."""
        return self.family.n_features(self.params)

    @property
    def dtype(self):
        """Floating dtype of the parameters; data is computed in this dtype."""
        return self.weights.dtype

    def _rows(self, x, missing):
        """Checked rows and M, the most missing entries of a row (0 without ``missing``, or with no NaN)."""
        if not incomplete.check_missing(missing, self.family):
            return self._data(x), 0
        self._data_shape()
        rows = incomplete.incomplete_rows(x, self.family, "x", self.n_features, drop=False)
        return checks.to_device(rows.x.astype(self.dtype)), rows.max_missing

    def _data_shape(self):
        if np.ndim(self.weights) != 1:
            raise ValueError(
                f"`weights` has shape {tuple(np.shape(self.weights))}, a batch of mixtures; this method needs one "
                "mixture, with `weights` of shape (K,): take one with jax.tree.map(lambda a: a[i], mixture), "
                "or jax.vmap the method."
            )

    def _data(self, x):
        """Rows checked as :func:`mixtures.fit` checks them (the family's domain too, unless traced)."""
        self._data_shape()
        if checks.is_traced(x):
            return checks.as_data(x, "x", n_features=self.n_features).astype(self.dtype)
        host = checks.as_host_data(x, "x", n_features=self.n_features)
        self.family.check_data(host)
        return checks.to_device(host).astype(self.dtype)

    def log_prob(self, x, *, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Log-density log p(xₙ) of each row.

        Args:
          x: (N, D) data.
          chunk_size: rows per block (memory O(chunk_size × K × D)); default
            chosen from K and D.
          missing: None (NaN is refused) or "marginalize": NaN marks a
            missing entry, and each row is taken by its observed entries (the
            marginal density over them; a row with nothing observed gets the
            mixing weights). See :func:`mixtures.fit`.

        Returns:
          (N,) log-densities.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 1)), np.ones(1)), g)
          >>> float(m.log_prob(np.zeros((1, 1)))[0]).__round__(4)  # -log √(2π)
          -0.9189
        """
        x, max_missing = self._rows(x, missing)
        return rows_log_prob(self, x, self._chunk(chunk_size), max_missing)

    def responsibilities(self, x, *, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Posterior probabilities rₙₖ = p(zₙ = k | xₙ) (the soft clustering).

        Args:
          x: (N, D) data.
          chunk_size: rows per block.
          missing: None (NaN is refused) or "marginalize": NaN marks a
            missing entry, and each row is taken by its observed entries (the
            marginal density over them; a row with nothing observed gets the
            mixing weights). See :func:`mixtures.fit`.

        Returns:
          (N, K) responsibilities; each row sums to one.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-2.0], [2.0]]), np.ones(2)), g)
          >>> m.responsibilities(np.array([[0.0], [5.0]])).round(3).tolist()
          [[0.5, 0.5], [0.0, 1.0]]
        """
        x, max_missing = self._rows(x, missing)
        return _responsibilities(self, x, self._chunk(chunk_size), max_missing)

    def predict(self, x, *, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Hard clustering: argmaxₖ rₙₖ for each row.

        Args:
          x: (N, D) data.
          chunk_size: rows per block.
          missing: None (NaN is refused) or "marginalize": NaN marks a
            missing entry, and each row is taken by its observed entries (the
            marginal density over them; a row with nothing observed gets the
            mixing weights). See :func:`mixtures.fit`.

        Returns:
          (N,) int32 component indices.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-2.0], [2.0]]), np.ones(2)), g)
          >>> m.predict(np.array([[-1.0], [3.0]])).tolist()
          [0, 1]
        """
        x, max_missing = self._rows(x, missing)
        return _predict(self, x, self._chunk(chunk_size), max_missing)

    def impute(self, x, *, key: jax.Array | None = None, n: int | None = None, chunk_size: int | None = None) -> jax.Array:
        """Rows with their missing entries (NaN) filled in, from the observed entries.

        Without ``key``: each missing entry is replaced by its conditional
        mean E[xₘ | xₒ] = Σₖ rₙₖ E[xₘ | xₒ, zₙ = k] under the mixture (the
        responsibilities rₙₖ those of the observed entries). With ``key`` and
        ``n``: ``n`` multiple imputations, draws from the conditional
        distribution p(xₘ | xₒ) (a component drawn from rₙₖ, then the missing
        entries from that component's conditional). Observed entries are
        returned as given. Gaussian families (``family.conditional_rows``).

        Args:
          x: (N, D) rows, NaN at the missing entries.
          key: optional JAX PRNG key for multiple imputations.
          n: the number of imputations (with ``key``).
          chunk_size: rows per block.

        Returns:
          (N, D), or (n, N, D) with ``key``.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]])), g)
          >>> np.asarray(m.impute(np.array([[1.0, np.nan]]))).round(6).tolist()  # 0.8 · 1
          [[1.0, 0.8]]
        """
        conditional = getattr(self.family, "conditional_rows", None)
        if conditional is None:
            raise TypeError(
                f"impute needs Gaussian components: {type(self.family).__name__} does not give the conditional "
                "distribution of a row's missing entries given its observed ones (family.conditional_rows)."
            )
        if (key is None) != (n is None):
            raise ValueError("impute: give both `key` and `n` for multiple imputations, or neither for the conditional mean.")
        if key is not None:
            key = checks.prng_key(key)
            n = checks.positive_int(n, "n")
        rows, max_missing = self._rows(x, "marginalize")
        if max_missing == 0:
            return rows if key is None else jnp.broadcast_to(rows, (n,) + rows.shape)
        chunk = self._chunk(chunk_size)
        if key is None:
            return _impute_mean(self, rows, chunk, max_missing)
        return _impute_draws(self, rows, key, n, max_missing)

    def condition(self, values, *, observed) -> Mixture:
        """The conditional mixture of the other columns given ``values`` at the columns ``observed``.

        p(xₘ | xₒ) = Σₖ wₖ p(xₘ | xₒ, k) with wₖ ∝ πₖ p(xₒ | θₖ): for Gaussian
        components (Gaussian mixture regression), each p(xₘ | xₒ, k) is
        Gaussian with mean μₘ + Σₘₒ Σₒₒ⁻¹ (xₒ − μₒ) and covariance
        Σₘₘ − Σₘₒ Σₒₒ⁻¹ Σₒₘ; for families with independent columns it is the
        component's marginal over the other columns. Computed on the host in
        float64, returned in the mixture's dtype.

        Args:
          values: (len(observed),) the observed values, one point.
          observed: distinct column indices, in the order of ``values``.

        Returns:
          A :class:`Mixture` over the remaining columns, in increasing order.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("full")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]])), g)
          >>> c = m.condition([1.0], observed=[0])
          >>> np.asarray(c.params.means).round(6).tolist(), np.asarray(c.params.covariances).round(6).tolist()
          ([[0.8]], [[[0.36]]])
        """
        self._data_shape()
        cols = _columns(observed, self.n_features, "observed")
        others = [j for j in range(self.n_features) if j not in cols]
        if not others:
            raise ValueError("`observed` names every column: nothing is left to condition.")
        point = np.full((1, self.n_features), np.nan)
        given = np.asarray(values, dtype=np.float64).reshape(-1)
        if given.shape != (len(cols),):
            raise ValueError(f"`values` must hold {len(cols)} values, one per observed column; received shape {np.shape(values)}.")
        if not np.all(np.isfinite(given)):
            raise ValueError(
                f"`values` must be finite (the observed values); received {given.tolist()}: leave a column that is "
                "not observed out of `observed`."
            )
        point[0, cols] = given
        rows, max_missing = self._rows(point, "marginalize")
        log_w = np.asarray(component_log_probs(self, rows, max_missing)[0], np.float64)
        weights = np.exp(log_w - np.max(log_w))
        weights = weights / weights.sum()
        conditional = getattr(self.family, "condition", None)
        if conditional is not None:
            family, params = conditional(self.params, cols, given)
        else:
            family, params = self._marginal(others)
        return Mixture(jnp.asarray(weights, self.dtype), jax.tree.map(lambda a: jnp.asarray(a, self.dtype), params), family)

    def marginal(self, dims) -> Mixture:
        """The mixture's marginal over the columns ``dims`` (same weights, each component's marginal).

        Args:
          dims: distinct column indices, in the order wanted.

        Returns:
          A :class:`Mixture` over ``len(dims)`` columns.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 4.0, 9.0]])), g)
          >>> m.marginal([2]).params.means.tolist()
          [[2.0]]
        """
        self._data_shape()
        family, params = self._marginal(_columns(dims, self.n_features, "dims"))
        return Mixture(self.weights, params, family)

    def _marginal(self, cols):
        found = self.family.marginal(self.params, cols)
        if found is None:
            raise TypeError(f"{type(self.family).__name__} has no marginal over a subset of its columns.")
        return found

    def sample(self, n: int, *, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Draws by the generative process: zₙ ~ Categorical(π), then xₙ ~ p(x | θ_zₙ).

        Args:
          n: number of draws.
          key: a JAX PRNG key.

        Returns:
          ``(x, z)``: draws of shape (n, D) and their components, shape (n,).

        Example:
          >>> import jax, numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> m = mx.Mixture(np.array([0.3, 0.7]), g.make_params(np.zeros((2, 2)), np.ones((2, 2))), g)
          >>> x, z = m.sample(5, key=jax.random.key(0))
          >>> x.shape, z.shape
          ((5, 2), (5,))
        """
        n = checks.positive_int(n, "n")
        key = checks.prng_key(key)
        return _sample(self, key, n)

    @property
    def n_parameters(self) -> int:
        """Number of free parameters p of the mixture, as the information criteria count them.

        p = ``family.n_free_parameters(K₊, D)`` + K₊ − 1, where K₊ is the
        number of components with weight > 0 (a component of weight exactly
        zero is switched off and not counted) and K₊ − 1 counts the free
        mixing weights. For a Gaussian mixture this is scikit-learn's
        ``GaussianMixture._n_parameters()``. Needs concrete (not traced)
        weights.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("diag")
          >>> p = g.make_params(np.zeros((3, 2)), np.ones((3, 2)))
          >>> mx.Mixture(np.array([0.5, 0.5, 0.0]), p, g).n_parameters  # 2 × (2 means + 2 variances) + 1
          9
        """
        if checks.is_traced(self.weights):
            raise TypeError(
                "`n_parameters` counts the components with weight > 0 and needs a concrete mixture; "
                "it was called on a traced one (inside jit or vmap)."
            )
        k_active = int(np.count_nonzero(np.asarray(self.weights) > 0))
        return self.family.n_free_parameters(k_active, self.n_features) + k_active - 1

    def score(self, x, *, sample_weight=None, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Mean log-likelihood per sample, Σₙ wₙ log p(xₙ) / Σₙ wₙ (scikit-learn's ``score``).

        With ``missing="marginalize"`` each row counts by its observed
        entries and a row with nothing observed not at all (as in a fit, whose
        ``log_likelihood`` this then reproduces).

        Args:
          x: (N, D) data.
          sample_weight: optional (N,) non-negative row weights.
          chunk_size: rows per block; default chosen from K and D.
          missing: None (NaN is refused) or "marginalize": NaN marks a
            missing entry, and each row is taken by its observed entries (the
            marginal density over them; a row with nothing observed gets the
            mixing weights). See :func:`mixtures.fit`.

        Returns:
          A scalar in the mixture's dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 1)), np.ones(1)), g)
          >>> x = np.array([[0.0], [2.0]])
          >>> round(float(m.score(x, sample_weight=np.array([3.0, 0.0]))), 4)  # only x = 0 counts
          -0.9189
        """
        x, max_missing = self._rows(x, missing)
        weights = _without_empty_rows(x, checks.as_sample_weight(sample_weight, x.shape[0], dtype=x.dtype), max_missing)
        total = x.shape[0] if weights is None else jnp.sum(weights)
        return _score(self, x, weights, self._chunk(chunk_size), max_missing) / total

    def bic(self, x, *, sample_weight=None, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Bayesian information criterion, BIC = −2 log L + p log N (lower is better).

        log L = Σₙ wₙ log p(xₙ) is the total log-likelihood, p is
        :attr:`n_parameters` and N the number of samples (Σₙ wₙ when
        ``sample_weight`` is given). Equals scikit-learn's
        ``GaussianMixture.bic`` for the same Gaussian mixture.

        Args:
          x: (N, D) data.
          sample_weight: optional (N,) non-negative row weights; integer
            weights count as repeated rows.
          chunk_size: rows per block; default chosen from K and D.
          missing: None (NaN is refused) or "marginalize": each row by its
            observed entries; a row with nothing observed counts for
            nothing, in log L and in N.

        Returns:
          A scalar in the mixture's dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 1)), np.ones(1)), g)
          >>> x = np.array([[-1.0], [1.0]])  # log L = −(log 2π + 1), p = 2
          >>> round(float(m.bic(x)), 4)  # 2 (log 2π + 1) + 2 log 2
          7.062
        """
        return self._criteria(x, sample_weight, chunk_size, missing)[0]

    def aic(self, x, *, sample_weight=None, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Akaike information criterion, AIC = −2 log L + 2p (lower is better).

        log L and p as in :meth:`bic`. Equals scikit-learn's
        ``GaussianMixture.aic`` for the same Gaussian mixture.

        Args:
          x: (N, D) data.
          sample_weight: optional (N,) non-negative row weights.
          chunk_size: rows per block; default chosen from K and D.
          missing: None (NaN is refused) or "marginalize": each row by its
            observed entries; a row with nothing observed counts for
            nothing, in log L and in N.

        Returns:
          A scalar in the mixture's dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 1)), np.ones(1)), g)
          >>> x = np.array([[-1.0], [1.0]])
          >>> round(float(m.aic(x)), 4)  # 2 (log 2π + 1) + 2 · 2
          9.6758
        """
        return self._criteria(x, sample_weight, chunk_size, missing)[1]

    def icl(self, x, *, sample_weight=None, chunk_size: int | None = None, missing: str | None = None) -> jax.Array:
        """Integrated completed likelihood criterion, ICL = BIC + 2C (lower is better).

        C = −Σₙ wₙ log r_{n,ẑₙ} ≥ 0, with ẑₙ = argmaxₖ rₙₖ the hard cluster of
        row n: the classification entropy term of mclust's ``icl()``
        (Biernacki, Celeux and Govaert, 2000), in the sign convention of
        :meth:`bic` (mclust reports −ICL, higher being better). ICL ≥ BIC, and
        the gap grows as the clusters overlap: ICL prefers well-separated
        clusters.

        Args:
          x: (N, D) data.
          sample_weight: optional (N,) non-negative row weights.
          chunk_size: rows per block; default chosen from K and D.
          missing: None (NaN is refused) or "marginalize": each row by its
            observed entries; a row with nothing observed counts for
            nothing, in log L and in N.

        Returns:
          A scalar in the mixture's dtype.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-1.0], [1.0]]), np.ones(2)), g)
          >>> x = np.array([[0.0]])  # on the boundary: r = (½, ½), C = log 2
          >>> round(float(m.icl(x) - m.bic(x)), 4)  # 2 log 2
          1.3863
        """
        return self._criteria(x, sample_weight, chunk_size, missing)[2]

    def _criteria(self, x, sample_weight, chunk_size, missing=None):
        """(BIC, AIC, ICL); with missing entries a row with nothing observed counts for nothing (N too)."""
        x, max_missing = self._rows(x, missing)
        weights = _without_empty_rows(x, checks.as_sample_weight(sample_weight, x.shape[0], dtype=x.dtype), max_missing)
        n_parameters = jnp.asarray(self.n_parameters, x.dtype)
        return _criteria(self, x, weights, n_parameters, self._chunk(chunk_size), max_missing)

    def _chunk(self, chunk_size):
        if chunk_size is None:
            return blocks.default_chunk_size(self.n_components, self.n_features)
        return checks.positive_int(chunk_size, "chunk_size")


def component_log_probs(mixture: Mixture, x: jax.Array, max_missing: int = 0) -> jax.Array:
    """(B, K) log πₖ + log p(xₙ | θₖ) for a block of rows (of the observed entries, with ``max_missing`` > 0)."""
    family = mixture.family
    if max_missing:
        logp = family.log_prob_observed(mixture.params, x, max_missing)
    else:
        logp = family.log_prob_components(mixture.params, x)
    return logp + jnp.log(mixture.weights)[None, :]


def block_responsibilities(mixture: Mixture, x: jax.Array, hard: bool = False, labels=None):
    """Responsibilities (B, K) of a block of rows and each row's log-likelihood term (B,).

    Soft: rₙₖ = p(zₙ = k | xₙ) and the term is log p(xₙ); a row that every
    component gives −∞ gets zero responsibilities, never NaN. Hard
    (classification EM): one-hot argmax responsibilities and the term
    maxₖ log πₖ p(xₙ | θₖ). ``labels`` (B,) fixes the rows with a label
    l ≥ 0 to one-hot responsibilities at l and the term log π_l p(xₙ | θ_l).
    """
    return responsibilities_from_log_probs(component_log_probs(mixture, x), hard, labels)


def finite_components(params) -> jax.Array:
    """(K,) whether every leaf of component k's parameters is finite."""
    leaves = jax.tree.leaves(params)
    finite = jnp.ones(leaves[0].shape[:1], bool)
    for leaf in leaves:
        finite &= jnp.all(jnp.isfinite(leaf.reshape(leaf.shape[0], -1)), axis=1)
    return finite


def where_components(mask: jax.Array, new, old):
    """Component-wise choice: component k from ``new`` where ``mask[k]``, else from ``old``."""

    def pick(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (o.ndim - 1)), n.astype(o.dtype), o)

    return jax.tree.map(pick, new, old)


def log_likelihood_and_entropy(mixture: Mixture, x, weights, chunk_size: int, max_missing: int = 0):
    """Σₙ wₙ log p(xₙ) and the classification entropy −Σₙ wₙ log maxₖ rₙₖ, block by block.

    Pure and jit/vmap-compatible; no (N, K) array is formed beyond one block.
    Rows of weight zero add nothing.

    Args:
      mixture: the mixture.
      x: (N, D) data in the mixture's dtype.
      weights: (N,) row weights or None.
      chunk_size: rows per block.
      max_missing: 0, or (rows with NaN at missing entries) at least the
        number of missing entries of any row: each row's observed entries.

    Returns:
      ``(log_likelihood, entropy)``, two scalars (sums, not means).

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures._src.core.mixture import log_likelihood_and_entropy
      >>> g = mx.Gaussian("spherical")
      >>> m = mx.Mixture(np.array([0.5, 0.5, 0.0]), g.make_params(np.array([[-1.0], [1.0], [0.0]]), np.ones(3)), g)
      >>> ll, e = log_likelihood_and_entropy(m, np.zeros((4, 1)), None, chunk_size=3)
      >>> round(float(e), 4)  # every row has r = (½, ½, 0): entropy 4 log 2
      2.7726
    """

    def block(rows, w, idx):
        logp = component_log_probs(mixture, rows, max_missing)
        ll = jax.nn.logsumexp(logp, axis=1)
        log_r = logp - jnp.where(jnp.isfinite(ll), ll, 0.0)[:, None]
        entropy = -jnp.max(log_r, axis=1)  # −log r of the hard cluster
        keep = w > 0
        return jnp.sum(jnp.where(keep, w * ll, 0.0)), jnp.sum(jnp.where(keep, w * entropy, 0.0))

    return blocks.sum_over_chunks(block, x, weights, chunk_size)


def information_criteria(log_likelihood, entropy, n_samples, n_parameters):
    """``(bic, aic, icl)`` from the summed log-likelihood and entropy; lower is better.

    BIC = −2 log L + p log N, AIC = −2 log L + 2p and ICL = BIC + 2C.

    Args:
      log_likelihood: total log-likelihood log L (a sum over samples).
      entropy: the classification entropy C = −Σₙ wₙ log maxₖ rₙₖ.
      n_samples: N, or Σₙ wₙ for weighted data.
      n_parameters: p, the number of free parameters.

    Returns:
      Three scalars.

    Example:
      >>> from mixtures._src.core.mixture import information_criteria
      >>> [round(float(c), 3) for c in information_criteria(-10.0, 1.5, 100.0, 3)]
      [33.816, 26.0, 36.816]
    """
    log_likelihood = jnp.asarray(log_likelihood)
    bic = -2.0 * log_likelihood + n_parameters * jnp.log(n_samples)
    aic = -2.0 * log_likelihood + 2.0 * n_parameters
    return bic, aic, bic + 2.0 * entropy


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _criteria(mixture, x, weights, n_parameters, chunk_size, max_missing=0):
    log_likelihood, entropy = log_likelihood_and_entropy(mixture, x, weights, chunk_size, max_missing)
    n_samples = jnp.asarray(x.shape[0], x.dtype) if weights is None else jnp.sum(weights)
    return information_criteria(log_likelihood, entropy, n_samples, n_parameters)


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _score(mixture, x, weights, chunk_size, max_missing=0):
    def block(rows, w, idx):
        ll = jax.nn.logsumexp(component_log_probs(mixture, rows, max_missing), axis=1)
        return jnp.sum(jnp.where(w > 0, w * ll, 0.0))

    return blocks.sum_over_chunks(block, x, weights, chunk_size)


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def rows_log_prob(mixture, x, chunk_size, max_missing=0):
    """(N,) log p(xₙ) of device rows already checked (or deliberately unchecked, as a figure's mesh), block by block."""
    return blocks.map_over_chunks(
        lambda rows: jax.nn.logsumexp(component_log_probs(mixture, rows, max_missing), axis=1), x, chunk_size
    )


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _responsibilities(mixture, x, chunk_size, max_missing=0):
    return blocks.map_over_chunks(
        lambda rows: responsibilities_from_log_probs(component_log_probs(mixture, rows, max_missing))[0], x, chunk_size
    )


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _predict(mixture, x, chunk_size, max_missing=0):
    return blocks.map_over_chunks(
        lambda rows: jnp.argmax(component_log_probs(mixture, rows, max_missing), axis=1).astype(jnp.int32),
        x,
        chunk_size,
    )


@functools.partial(jax.jit, static_argnames="n")
def _sample(mixture, key, n):
    key_z, key_x = jax.random.split(key)
    z = jax.random.categorical(key_z, jnp.log(mixture.weights), shape=(n,))
    keys = jax.random.split(key_x, n)

    def draw(args):
        zn, kn = args
        params = jax.tree.map(lambda p: p[zn], mixture.params)
        return mixture.family.sample(params, kn)

    x = lax.map(draw, (z, keys), batch_size=min(n, 4096))
    return x, z.astype(jnp.int32)


def _without_empty_rows(x, weights, max_missing: int):
    """Row weights with the rows that observe nothing set to 0 (they count for nothing, in N too), host-side."""
    if not max_missing:
        return weights
    found = incomplete.without_empty_rows(np.asarray(x), weights)
    return found if found is weights else checks.to_device(found)


def _columns(dims, n_features: int, name: str) -> list[int]:
    """Distinct column indices in 0..D−1 (host)."""
    try:
        cols = [int(c) for c in np.asarray(dims).reshape(-1)]
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a sequence of column indices; received {dims!r}.") from None
    if not cols or len(set(cols)) != len(cols) or min(cols) < 0 or max(cols) >= n_features:
        raise ValueError(f"`{name}` must be distinct column indices in 0..{n_features - 1}; received {dims!r}.")
    return cols


@functools.partial(jax.jit, static_argnames=("chunk_size", "max_missing"))
def _impute_mean(mixture, x, chunk_size, max_missing):
    def fill(rows):
        logp, means, _ = mixture.family.conditional_rows(mixture.params, rows, max_missing)
        resp = responsibilities_from_log_probs(logp + jnp.log(mixture.weights)[None, :])[0]
        mean = jnp.einsum("bk,kbd->bd", resp, means, precision=lax.Precision.HIGHEST)
        return jnp.where(jnp.isnan(rows), mean, rows)

    return blocks.map_over_chunks(fill, x, chunk_size)


@functools.partial(jax.jit, static_argnames=("n", "max_missing"))
def _impute_draws(mixture, x, key, n, max_missing):
    """``n`` draws of the missing entries, all rows at once (memory O(K × N × D) per draw)."""
    m = min(max_missing, x.shape[-1])

    def one(draw_key):
        def fill(rows, row_key):
            logp, means, deviation = mixture.family.conditional_rows(mixture.params, rows, max_missing)
            logits = logp + jnp.log(mixture.weights)[None, :]
            key_z, key_e = jax.random.split(row_key)
            z = jax.random.categorical(key_z, logits, axis=-1)  # (B,)
            k = mixture.weights.shape[0]
            noise = jax.random.normal(key_e, (k, rows.shape[0], m), rows.dtype)
            value = means + deviation(noise)  # (K, B, D)
            chosen = jnp.take_along_axis(value, z[None, :, None], axis=0)[0]
            return jnp.where(jnp.isnan(rows), chosen, rows)

        return fill(x, draw_key)

    return jax.vmap(one)(jax.random.split(key, n))

