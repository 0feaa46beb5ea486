"""Categorical components: integer-coded features, independent given the component."""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from mixtures._src.core import checks
from mixtures._src.core import domain
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.core.registry import register_family

__all__ = ["Categorical", "CategoricalParams"]


class CategoricalParams(NamedTuple):
    """Parameters of K categorical components.

    Attributes:
      probs: (K, ΣⱼCⱼ) the per-feature probability vectors, concatenated in
        feature order: columns [offsetⱼ, offsetⱼ + Cⱼ) hold the Cⱼ category
        probabilities of feature j (each block sums to one), with
        offsetⱼ = C₀ + … + Cⱼ₋₁. :meth:`Categorical.feature_probs` splits them.
    """

    probs: jax.Array


class _Layout(NamedTuple):
    feature: np.ndarray  # (ΣC,) feature of each concatenated probability
    category: np.ndarray  # (ΣC,) its category
    free: np.ndarray  # (M,) positions of categories 1..Cⱼ−1 (the natural parameters)
    first: np.ndarray  # (J,) positions of category 0 of each feature
    width: int  # max Cⱼ


@functools.lru_cache(maxsize=64)
def _layout(n_categories: tuple[int, ...]) -> _Layout:
    sizes = np.asarray(n_categories)
    feature = np.repeat(np.arange(len(sizes)), sizes)
    category = np.concatenate([np.arange(c) for c in sizes])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return _Layout(feature, category, np.flatnonzero(category > 0), first, int(sizes.max()))


@register_family
@dataclasses.dataclass(frozen=True)
class Categorical(ExponentialFamily):
    """Independent categorical features; feature j takes values 0, …, Cⱼ − 1.

    Data hold category codes as numbers (column j of ``x`` holds feature j).
    The natural parametrisation is minimal: category 0 of each feature is the
    reference, T(x) is the one-hot code of categories 1, …, Cⱼ − 1 (length
    M = Σⱼ (Cⱼ − 1)), ηⱼ꜀ = log(pⱼ꜀ / pⱼ₀) and A(η) = Σⱼ log(1 + Σ꜀ exp ηⱼ꜀),
    so ∇²A is non-singular. The M-step is closed form (category frequencies).

    Args:
      n_categories: number of categories Cⱼ ≥ 2 of each feature, a tuple of
        Python ints (a list is converted).
      min_prob: floor in (0, 1 / max Cⱼ) on fitted probabilities. An unseen
        category has maximum-likelihood probability 0 (η = −∞); the M-step
        floors it at ``min_prob`` and renormalises the feature's vector.

    Example:
      >>> from mixtures import Categorical
      >>> Categorical(n_categories=(3, 2))
      Categorical(n_categories=(3, 2), min_prob=1e-06)
    """

    n_categories: tuple[int, ...] = dataclasses.field(
        metadata={"option": "categories", "help": "categories per column, e.g. 3,2 (default: largest code + 1)"}
    )
    min_prob: float = 1e-6

    def __post_init__(self):
        values = self.n_categories
        if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
            raise TypeError(f"`n_categories` must be a tuple of integers; received {values!r}.")
        if not values:
            raise ValueError("`n_categories` must name at least one feature; received ().")
        for j, c in enumerate(values):
            if isinstance(c, bool) or not isinstance(c, numbers.Integral):
                raise TypeError(f"`n_categories[{j}]` must be an integer; received {c!r}.")
            if c < 2:
                raise ValueError(f"`n_categories[{j}]` must be at least 2; received {c}.")
        values = tuple(int(c) for c in values)
        object.__setattr__(self, "n_categories", values)
        bound = 1.0 / max(values)
        object.__setattr__(self, "min_prob", domain.positive_number(self.min_prob, "min_prob", upper=bound))

    # -- layout helpers -----------------------------------------------------

    def _padded(self, flat, fill):
        """(ΣC,) per-category values → (J, max C), padding filled with ``fill``."""
        lay = _layout(self.n_categories)
        base = jnp.full((len(self.n_categories), lay.width), fill, flat.dtype)
        return base.at[lay.feature, lay.category].set(flat)

    def _full_logits(self, natural):
        """(J, max C) logits: 0 for category 0, η for the others, −∞ for padding."""
        lay = _layout(self.n_categories)
        flat = jnp.zeros(lay.feature.shape, natural.dtype).at[lay.free].set(natural)
        return self._padded(flat, -jnp.inf)

    def feature_probs(self, params) -> tuple[jax.Array, ...]:
        """The probabilities split per feature: a tuple of J arrays of shape (…, Cⱼ).

        Example:
          >>> from mixtures import Categorical
          >>> cat = Categorical((2, 3))
          >>> p = cat.make_params([[0.5, 0.5, 0.2, 0.3, 0.5]])
          >>> [a.tolist() for a in cat.feature_probs(p)]
          [[[0.5, 0.5]], [[0.2, 0.3, 0.5]]]
        """
        ends = np.cumsum(self.n_categories)
        return tuple(params.probs[..., e - c : e] for c, e in zip(self.n_categories, ends))

    def make_params(self, probs) -> CategoricalParams:
        """Parameters from concatenated probability vectors, checked on the host.

        Args:
          probs: (K, ΣⱼCⱼ) positive probabilities, each feature's block summing
            to one (to 1e-6); blocks are renormalised exactly.

        Returns:
          CategoricalParams in the floating dtype of ``probs``.

        Example:
          >>> from mixtures import Categorical
          >>> Categorical((2, 2)).make_params([[0.1, 0.9, 0.5, 0.5]]).probs.shape
          (1, 4)
        """
        probs = np.asarray(probs)
        total = sum(self.n_categories)
        if probs.ndim != 2 or probs.shape[1] != total:
            raise ValueError(
                f"`probs` must have shape (K, {total}) for n_categories={self.n_categories}; "
                f"received shape {probs.shape}."
            )
        if not np.all(np.isfinite(probs) & (probs > 0)):
            raise ValueError(f"`probs` must be finite and positive; received {probs}.")
        lay = _layout(self.n_categories)
        sums = np.zeros((probs.shape[0], len(self.n_categories)))
        np.add.at(sums.T, lay.feature, probs.T.astype(np.float64))
        if not np.allclose(sums, 1.0, rtol=0.0, atol=1e-6):
            raise ValueError(f"each feature's block of `probs` must sum to one; the sums are {sums}.")
        dtype = checks.float_dtype_for(probs.dtype)
        return CategoricalParams(jnp.asarray(probs / sums[:, lay.feature], dtype))

    # -- rows with missing entries -------------------------------------------

    handles_missing = True

    def stat_columns(self, n_features: int) -> np.ndarray:
        """The feature each entry of T(x) (a category 1..Cⱼ−1 of feature j) belongs to.

        Example:
          >>> from mixtures import Categorical
          >>> Categorical((3, 2)).stat_columns(2).tolist()
          [0, 0, 1]
        """
        del n_features
        lay = _layout(self.n_categories)
        return lay.feature[lay.free]

    def log_prob_observed(self, params, x, max_missing: int):
        """Σ over the observed features of log pⱼ(xⱼ) (the features are independent given the component)."""
        del max_missing
        observed = ~jnp.isnan(x)
        codes = jnp.where(observed, x, 0).astype(jnp.int32) + _layout(self.n_categories).first[None, :]
        per = jnp.log(params.probs)[:, codes]  # (K, B, J)
        return jnp.sum(jnp.where(observed[None], per, 0.0), axis=-1).T

    # -- exponential-family form ---------------------------------------------

    def sufficient_stats(self, x):
        """One-hot codes of categories 1..Cⱼ−1 of every feature; x (J,) → (M,).

        Example:
          >>> import numpy as np
          >>> from mixtures import Categorical
          >>> Categorical((3, 2)).sufficient_stats(np.array([2.0, 0.0])).tolist()
          [0.0, 1.0, 0.0]
        """
        lay = _layout(self.n_categories)
        x = jnp.asarray(x)
        return (x[lay.feature[lay.free]] == lay.category[lay.free]).astype(x.dtype)

    def log_base_measure(self, x):
        """log h(x) = 0 for x of shape (J,); a scalar.

        Example:
          >>> import numpy as np
          >>> from mixtures import Categorical
          >>> float(Categorical((3,)).log_base_measure(np.array([1.0])))
          0.0
        """
        return jnp.zeros((), jnp.asarray(x).dtype)

    def log_partition(self, natural):
        """A(η) = Σⱼ log(1 + Σ꜀ exp ηⱼ꜀) for η of shape (M,); a scalar.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Categorical
          >>> round(float(Categorical((3, 2)).log_partition(jnp.zeros(3))), 6)  # log 3 + log 2
          1.791759
        """
        return jnp.sum(jax.nn.logsumexp(self._full_logits(natural), axis=1))

    def log_conjugate_normalizer(self, tau, nu):
        """log Z(τ, ν) = Σⱼ log B(αⱼ): a Dirichlet(αⱼ) posterior on each feature's probabilities.

        αⱼ꜀ = τⱼ꜀ for the categories c ≥ 1 and αⱼ₀ = ν − Σ꜀ τⱼ꜀, so Σ꜀ αⱼ꜀ = ν.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Categorical
          >>> round(float(Categorical((3,)).log_conjugate_normalizer(jnp.array([1.0, 1.0]), jnp.array(3.0))), 6)  # B(1,1,1) = ½
          -0.693147
        """
        lay = _layout(self.n_categories)
        features = lay.feature[lay.free]
        rest = nu - jax.ops.segment_sum(tau, features, num_segments=len(self.n_categories))
        return jnp.sum(gammaln(tau)) + jnp.sum(gammaln(rest) - gammaln(nu))

    def to_natural(self, params):
        """η = log pⱼ꜀ − log pⱼ₀ for categories c ≥ 1, shape (M,), of one component.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Categorical, CategoricalParams
          >>> eta = Categorical((3,)).to_natural(CategoricalParams(jnp.array([0.25, 0.25, 0.5])))
          >>> eta.round(6).tolist()
          [0.0, 0.693147]
        """
        lay = _layout(self.n_categories)
        log_p = jnp.log(params.probs)
        return log_p[lay.free] - log_p[lay.first[lay.feature[lay.free]]]

    def from_natural(self, natural):
        """One component's parameters from η (M,): a softmax per feature.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Categorical
          >>> Categorical((2, 2)).from_natural(jnp.zeros(2)).probs.tolist()
          [0.5, 0.5, 0.5, 0.5]
        """
        lay = _layout(self.n_categories)
        log_p = jax.nn.log_softmax(self._full_logits(natural), axis=1)
        # A probability that underflows is kept at the dtype's smallest normal number (log p stays finite).
        return CategoricalParams(jnp.maximum(jnp.exp(log_p[lay.feature, lay.category]), jnp.finfo(log_p.dtype).tiny))

    def params_from_mean(self, mean, previous):
        """Closed-form M-step from the frequencies of categories c ≥ 1, mean (M,).

        Category 0 gets one minus the others' sum; probabilities are then
        floored at ``min_prob`` and each feature's vector renormalised.

        Example:
          >>> import jax.numpy as jnp
          >>> from mixtures import Categorical
          >>> Categorical((3,)).params_from_mean(jnp.array([0.25, 0.5]), None).probs.tolist()
          [0.25, 0.25, 0.5]
        """
        del previous
        lay = _layout(self.n_categories)
        flat = jnp.zeros(lay.feature.shape, mean.dtype).at[lay.free].set(mean)
        rest = 1.0 - jnp.sum(self._padded(flat, 0.0), axis=1)  # (J,) category 0
        flat = jnp.maximum(flat.at[lay.first].set(rest), self.min_prob)
        sums = jnp.sum(self._padded(flat, 0.0), axis=1)
        return CategoricalParams(flat / sums[lay.feature])

    # -- the rest of the Family contract ---------------------------------------

    def sample(self, params, key):
        """One draw of category codes, shape (J,), in the probabilities' dtype.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from mixtures import Categorical, CategoricalParams
          >>> p = CategoricalParams(jnp.array([0.0, 0.0, 1.0, 1.0, 0.0]))
          >>> Categorical((3, 2)).sample(p, jax.random.key(0)).tolist()
          [2.0, 0.0]
        """
        probs = params.probs
        logits = self._padded(jnp.log(probs), -jnp.inf)
        return jax.random.categorical(key, logits, axis=1).astype(probs.dtype)

    def params_layout(self, n_components: int, n_features: int) -> CategoricalParams:
        """``probs`` of shape (K, ΣC), computed from ``n_categories`` alone (nothing of size ΣC is built).

        ``mixtures.load`` compares a file's arrays with this layout before
        anything else uses ``n_categories``, so a header claiming 10¹⁸
        categories is refused by shape instead of allocating.

        Example:
          >>> from mixtures import Categorical
          >>> Categorical((2, 3)).params_layout(4, 2).probs.shape
          (4, 5)
        """
        if n_features != len(self.n_categories):
            raise ValueError(
                f"{self!r} models {len(self.n_categories)} features; the parameters describe {n_features}."
            )
        return CategoricalParams(jax.ShapeDtypeStruct((n_components, sum(self.n_categories)), np.float32))

    def n_features(self, params) -> int:
        """Number of features J = len(``n_categories``).

        Example:
          >>> from mixtures import Categorical
          >>> cat = Categorical((2, 3))
          >>> cat.n_features(cat.make_params([[0.5, 0.5, 0.2, 0.3, 0.5]]))
          2
        """
        del params
        return len(self.n_categories)

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """K·Σⱼ(Cⱼ − 1): each feature's probabilities sum to one.

        Example:
          >>> from mixtures import Categorical
          >>> Categorical((3, 5)).n_free_parameters(2, 2)
          12
        """
        if n_features != len(self.n_categories):
            raise ValueError(
                f"`n_features` must be {len(self.n_categories)} for n_categories="
                f"{self.n_categories}; received {n_features}."
            )
        return n_components * sum(c - 1 for c in self.n_categories)

    def check_data(self, x) -> None:
        """Raises ``ValueError`` unless ``x`` (N, J) holds integer codes 0..Cⱼ−1 in column j.

        Example:
          >>> import numpy as np
          >>> from mixtures import Categorical
          >>> Categorical((3, 2)).check_data(np.array([[2.0, 1.0], [0.0, 2.0]]))
          Traceback (most recent call last):
          ...
          ValueError: column 1 of `x` must hold integer category codes 0..1; row 1 has 2.0.
        """
        x = domain.as_matrix(x, len(self.n_categories))
        upper = np.asarray(self.n_categories, dtype=np.float64)
        ok = domain.is_integer(x) & (x >= 0) & (x < upper[None, :])
        domain.require(x, ok, [f"integer category codes 0..{c - 1}" for c in self.n_categories])

    # -- describing itself to the front ends ------------------------------------------------

    support = "integer"
    density_on_the_plane = False

    def marginal(self, params: CategoricalParams, columns) -> tuple[Categorical, CategoricalParams]:
        """The features ``columns``, in that order: their category counts and probability blocks (host-side).

        The features are independent given the component, so the marginal is
        again a :class:`Categorical`.

        Example:
          >>> from mixtures import Categorical
          >>> cat = Categorical((2, 3))
          >>> family, p = cat.marginal(cat.make_params([[0.5, 0.5, 0.2, 0.3, 0.5]]), (1,))
          >>> family.n_categories, p.probs.tolist()
          ((3,), [[0.2, 0.3, 0.5]])
        """
        chosen = [int(c) for c in columns]
        blocks = self.feature_probs(params)
        family = Categorical(tuple(self.n_categories[c] for c in chosen), min_prob=self.min_prob)
        return family, CategoricalParams(jnp.concatenate([blocks[c] for c in chosen], axis=-1))

    def parameter_table(self, params: CategoricalParams, columns) -> list:
        """One row per column and category: "p(c=v)".

        Example:
          >>> import numpy as np
          >>> from mixtures import Categorical
          >>> f = Categorical((2,))
          >>> [(label, v.tolist()) for label, v in f.parameter_table(f.make_params([[0.25, 0.75]]), ["c"])]
          [('p(c=0)', [0.25]), ('p(c=1)', [0.75])]
        """
        probs = np.asarray(params.probs, np.float64)
        rows, offset = [], 0
        for c, n in zip(columns, self.n_categories):
            rows += [(f"p({c}={v})", probs[:, offset + v]) for v in range(n)]
            offset += n
        return rows

    @classmethod
    def from_data(cls, x: np.ndarray, **config) -> Categorical:
        """As :meth:`Family.from_data`; without ``n_categories``, each column's largest code + 1 (at least 2).

        Example:
          >>> import numpy as np
          >>> from mixtures import Categorical
          >>> Categorical.from_data(np.array([[0.0, 1.0], [2.0, 0.0]]))
          Categorical(n_categories=(3, 2), min_prob=1e-06)
        """
        if "n_categories" not in config:
            top = np.nanmax(np.asarray(x, np.float64), axis=0)
            config["n_categories"] = tuple(max(2, int(t) + 1) if np.isfinite(t) and t >= 0 else 2 for t in top)
        return cls(**config)
