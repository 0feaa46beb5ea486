"""The fitted object: mixing weights plus component parameters of one family."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mixtures import _checks, _chunks
from mixtures.family import Family

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
            object.__setattr__(self, "weights", jnp.asarray(self.weights))

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

    def _data(self, x):
        return _checks.as_data(x, "x", n_features=self.n_features).astype(self.dtype)

    def log_prob(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """Log-density log p(xₙ) of each row.

        Args:
          x: (N, D) data.
          chunk_size: rows per block (memory O(chunk_size × K × D)); default
            chosen from K and D.

        Returns:
          (N,) log-densities.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 1)), np.ones(1)), g)
          >>> float(m.log_prob(np.zeros((1, 1)))[0]).__round__(4)  # -log √(2π)
          -0.9189
        """
        x = self._data(x)
        return _log_prob(self, x, self._chunk(chunk_size))

    def responsibilities(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """Posterior probabilities rₙₖ = p(zₙ = k | xₙ) (the soft clustering).

        Args:
          x: (N, D) data.
          chunk_size: rows per block.

        Returns:
          (N, K) responsibilities; each row sums to one.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-2.0], [2.0]]), np.ones(2)), g)
          >>> m.responsibilities(np.array([[0.0], [5.0]])).round(3).tolist()
          [[0.5, 0.5], [0.0, 1.0]]
        """
        x = self._data(x)
        return _responsibilities(self, x, self._chunk(chunk_size))

    def predict(self, x, *, chunk_size: int | None = None) -> jax.Array:
        """Hard clustering: argmaxₖ rₙₖ for each row.

        Args:
          x: (N, D) data.
          chunk_size: rows per block.

        Returns:
          (N,) int32 component indices.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> g = mx.Gaussian("spherical")
          >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[-2.0], [2.0]]), np.ones(2)), g)
          >>> m.predict(np.array([[-1.0], [3.0]])).tolist()
          [0, 1]
        """
        x = self._data(x)
        return _predict(self, x, self._chunk(chunk_size))

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
        n = _checks.positive_int(n, "n")
        key = _checks.prng_key(key)
        return _sample(self, key, n)

    def _chunk(self, chunk_size):
        if chunk_size is None:
            return _chunks.default_chunk_size(self.n_components, self.n_features)
        return _checks.positive_int(chunk_size, "chunk_size")


def component_log_probs(mixture: Mixture, x: jax.Array) -> jax.Array:
    """(B, K) log πₖ + log p(xₙ | θₖ) for a block of rows."""
    return mixture.family.log_prob_components(mixture.params, x) + jnp.log(mixture.weights)[None, :]


def block_responsibilities(mixture: Mixture, x: jax.Array, hard: bool = False, labels=None):
    """Responsibilities (B, K) of a block of rows and each row's log-likelihood term (B,).

    Soft: rₙₖ = p(zₙ = k | xₙ) and the term is log p(xₙ); a row that every
    component gives −∞ gets zero responsibilities, never NaN. Hard
    (classification EM): one-hot argmax responsibilities and the term
    maxₖ log πₖ p(xₙ | θₖ). ``labels`` (B,) fixes the rows with a label
    l ≥ 0 to one-hot responsibilities at l and the term log π_l p(xₙ | θ_l).
    """
    logp = component_log_probs(mixture, x)
    if hard:
        best = jnp.argmax(logp, axis=1)
        resp = jax.nn.one_hot(best, logp.shape[1], dtype=x.dtype)
        ll = jnp.take_along_axis(logp, best[:, None], axis=1)[:, 0]
    else:
        ll = jax.nn.logsumexp(logp, axis=1)
        resp = jnp.exp(logp - jnp.where(jnp.isfinite(ll), ll, 0.0)[:, None])
    if labels is not None:
        known = labels >= 0
        label = jnp.maximum(labels, 0)
        resp = jnp.where(known[:, None], jax.nn.one_hot(label, logp.shape[1], dtype=x.dtype), resp)
        ll = jnp.where(known, jnp.take_along_axis(logp, label[:, None], axis=1)[:, 0], ll)
    return resp, ll


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


@functools.partial(jax.jit, static_argnums=2)
def _log_prob(mixture, x, chunk_size):
    return _chunks.map_over_chunks(
        lambda rows: jax.nn.logsumexp(component_log_probs(mixture, rows), axis=1), x, chunk_size
    )


@functools.partial(jax.jit, static_argnums=2)
def _responsibilities(mixture, x, chunk_size):
    return _chunks.map_over_chunks(
        lambda rows: jax.nn.softmax(component_log_probs(mixture, rows), axis=1), x, chunk_size
    )


@functools.partial(jax.jit, static_argnums=2)
def _predict(mixture, x, chunk_size):
    return _chunks.map_over_chunks(
        lambda rows: jnp.argmax(component_log_probs(mixture, rows), axis=1).astype(jnp.int32),
        x,
        chunk_size,
    )


@functools.partial(jax.jit, static_argnums=2)
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
