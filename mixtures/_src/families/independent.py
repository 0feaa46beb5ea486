"""Product families: different component families on disjoint groups of columns (mixed-type rows)."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core.family import Family
from mixtures._src.core.registry import register_family

__all__ = ["Independent"]


@register_family
@dataclasses.dataclass(frozen=True)
class Independent(Family):
    """Columns split into groups, each modelled by its own family, independent given the component.

    log p(x | θ) = Σ_g log p_g(x[cols_g] | θ_g). Every component of the
    mixture has one set of parameters per group; parameters and statistics are
    tuples with one entry per group, in the order of ``components``. Each
    method delegates to the group's family on its columns (batched methods to
    the batched ones, so a group keeps its own fast ``log_prob_components``).

    Args:
      components: a tuple of ``(family, columns)`` pairs: ``family`` a
        :class:`~mixtures.Family`, ``columns`` a tuple of column indices of
        ``x``. The groups must be disjoint and together cover 0 … D − 1
        exactly; within a group, the family sees the columns in the order
        given. Lists are accepted and stored as tuples.

    Raises:
      TypeError: if ``components`` is not a sequence of (Family, tuple of ints) pairs.
      ValueError: if it is empty, a group is empty, or the columns repeat or
        do not cover 0 … D − 1.

    Example:
      >>> import jax, numpy as np, mixtures as mx
      >>> from mixtures import Independent
      >>> fam = Independent(((mx.Gaussian("diag"), (0, 1)), (mx.Gaussian("spherical"), (2,))))
      >>> x = np.random.default_rng(0).normal(size=(100, 3))
      >>> mx.fit(x, fam, 2, key=jax.random.key(0)).mixture.params[0].means.shape
      (2, 2)
    """

    components: tuple

    def __post_init__(self):
        raw = self.components
        if isinstance(raw, (str, bytes)) or not isinstance(raw, (tuple, list)):
            raise TypeError(
                "`components` must be a tuple of (family, columns) pairs, e.g. "
                f"((mx.Gaussian('diag'), (0, 1)), (Poisson(), (2,))); received {raw!r}."
            )
        if len(raw) == 0:
            raise ValueError("`components` must hold at least one (family, columns) pair; received none.")
        groups = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise TypeError(f"`components[{i}]` must be a (family, columns) pair; received {entry!r}.")
            family, columns = entry
            if not isinstance(family, Family):
                raise TypeError(
                    f"`components[{i}][0]` must be a mixtures.Family such as mx.Gaussian('diag'); "
                    f"received {family!r}."
                )
            if family.m_step_needs_data:
                raise TypeError(
                    f"`components[{i}][0]` is {type(family).__name__}, whose M-step needs the data itself (as a "
                    "GradientFamily's does); Independent combines families with M-steps from summed "
                    "statistics only."
                )
            if isinstance(columns, (str, bytes)) or not isinstance(columns, (tuple, list)):
                raise TypeError(
                    f"`components[{i}][1]` must be a tuple of column indices such as (0, 1); "
                    f"received {columns!r}."
                )
            if not all(isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)) for c in columns):
                raise TypeError(f"`components[{i}][1]` must hold integer column indices; received {columns!r}.")
            columns = tuple(int(c) for c in columns)
            if not columns:
                raise ValueError(f"`components[{i}][1]` must name at least one column; received ().")
            groups.append((family, columns))
        _check_cover([c for _, cols in groups for c in cols])
        object.__setattr__(self, "components", tuple(groups))

    @property
    def n_columns(self) -> int:
        """D, the number of columns the groups cover together.

        Example:
          >>> import mixtures as mx
          >>> from mixtures import Independent
          >>> Independent(((mx.Gaussian("diag"), (1, 2)), (mx.Gaussian("diag"), (0,)))).n_columns
          3
        """
        return sum(len(cols) for _, cols in self.components)

    # -- densities ----------------------------------------------------------

    def log_prob(self, params: tuple, x) -> jax.Array:
        """Σ_g log p_g(x[cols_g] | θ_g) for one observation x (D,) and one component; a scalar.

        Example:
          >>> import jax, numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (0,)), (g, (1,))))
          >>> p = fam.init_params(np.zeros((1, 2)), np.array([[1.0, 1.0], [-1.0, -1.0]]))
          >>> round(float(fam.log_prob(jax.tree.map(lambda a: a[0], p), np.zeros(2))), 4)  # 2 × −log √(2π)
          -1.8379
        """
        total = None
        for (family, cols), p in zip(self.components, params):
            part = family.log_prob(p, _take(x, cols))
            total = part if total is None else total + part
        return total

    def log_prob_components(self, params: tuple, x) -> jax.Array:
        """(B, K) log-densities of rows x (B, D): the sum of each group's batched log-densities.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (0, 2)), (g, (1,))))
          >>> x = np.random.default_rng(0).normal(size=(5, 3))
          >>> fam.log_prob_components(fam.init_params(x[:2], x), x).shape
          (5, 2)
        """
        total = None
        for (family, cols), p in zip(self.components, params):
            part = family.log_prob_components(p, _take(x, cols))
            total = part if total is None else total + part
        return total

    # -- rows with missing entries -------------------------------------------

    @property
    def handles_missing(self) -> bool:
        """Whether every group's family takes rows with missing entries."""
        return all(family.handles_missing for family, _ in self.components)

    def log_prob_observed(self, params: tuple, x, max_missing: int) -> jax.Array:
        """The sum of each group's density of its observed entries (a group with nothing observed adds 0)."""
        total = None
        for (family, cols), p in zip(self.components, params):
            part = family.log_prob_observed(p, _take(x, cols), min(max_missing, len(cols)))
            total = part if total is None else total + part
        return total

    def accumulate_observed(self, params: tuple, x, resp, max_missing: int) -> tuple:
        """Each group's expected statistics given its observed entries; a tuple."""
        return tuple(
            family.accumulate_observed(p, _take(x, cols), resp, min(max_missing, len(cols)))
            for (family, cols), p in zip(self.components, params)
        )

    # -- EM -----------------------------------------------------------------

    def accumulate(self, params: tuple, x, resp) -> tuple:
        """Each group's statistics of its columns of x (B, D), given resp (B, K); a tuple.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (0, 1)), (g, (2,))))
          >>> x = np.random.default_rng(0).normal(size=(5, 3))
          >>> stats = fam.accumulate(fam.init_params(x[:2], x), x, np.full((5, 2), 0.5))
          >>> stats[0].first.shape, stats[1].first.shape
          ((2, 2), (2, 1))
        """
        return tuple(
            family.accumulate(p, _take(x, cols), resp) for (family, cols), p in zip(self.components, params)
        )

    def m_step(self, stats: tuple, counts, previous: tuple) -> tuple:
        """Each group's M-step from its statistics and the shared counts (K,); a tuple of parameters.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag", reg_covar=0.0)
          >>> fam = Independent(((g, (0,)), (g, (1,))))
          >>> x = np.array([[1.0, 10.0], [3.0, 20.0]])
          >>> p = fam.init_params(x[:1], x)
          >>> new = fam.m_step(fam.accumulate(p, x, np.ones((2, 1))), np.array([2.0]), p)
          >>> round(float(new[0].means[0, 0]), 9), round(float(new[1].means[0, 0]), 9)
          (2.0, 15.0)
        """
        return tuple(
            family.m_step(s, counts, p) for (family, _), s, p in zip(self.components, stats, previous)
        )

    def transport_stats(self, stats: tuple, counts, old: tuple, new: tuple) -> tuple:
        """Each group's statistics moved by its own family's :meth:`~mixtures.Family.transport_stats`; a tuple.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (0,)), (mx.Poisson(), (1,))))
          >>> x = np.array([[0.5, 2.0], [1.5, 4.0]])
          >>> old, new = fam.init_params(x[:1], x), fam.init_params(x[1:], x)
          >>> moved = fam.transport_stats(fam.accumulate(old, x, np.ones((2, 1))), np.array([2.0]), old, new)
          >>> bool(np.allclose(moved[0].second, fam.accumulate(new, x, np.ones((2, 1)))[0].second)), moved[1].sum_t.tolist()
          (True, [[6.0]])
        """
        return tuple(
            family.transport_stats(s, counts, o, n)
            for (family, _), s, o, n in zip(self.components, stats, old, new)
        )

    def sample(self, params: tuple, key) -> jax.Array:
        """One draw, shape (D,), from one component: each group drawn with its own key.

        The result has the dtype JAX promotes the groups' draws to (the
        parameters' floating dtype when all groups share it).

        Example:
          >>> import jax, numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (2,)), (g, (0, 1))))
          >>> p = (g.make_params([[100.0]], np.ones((1, 1))), g.make_params(np.zeros((1, 2)), np.ones((1, 2))))
          >>> draw = fam.sample(jax.tree.map(lambda a: a[0], p), jax.random.key(0))
          >>> draw.shape, bool(draw[2] > 90)
          ((3,), True)
        """
        keys = jax.random.split(key, len(self.components))
        parts = [family.sample(p, k) for (family, _), p, k in zip(self.components, params, keys)]
        dtype = jnp.result_type(*parts)
        stacked = jnp.concatenate([part.astype(dtype) for part in parts])
        order = np.argsort(np.concatenate([np.asarray(cols) for _, cols in self.components]))
        return stacked[order]

    def init_params(self, points, x) -> tuple:
        """Each group's components at its columns of points (K, D), scaled by its columns of x (N, D).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> x = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
          >>> p = Independent(((g, (0, 2)), (g, (1,)))).init_params(x, x)
          >>> p[0].means.tolist(), p[1].means.tolist()
          ([[0.0, 2.0], [3.0, 5.0]], [[1.0], [4.0]])
        """
        return tuple(
            family.init_params(_take(points, cols), _take(x, cols)) for family, cols in self.components
        )

    # -- sizes and checks ---------------------------------------------------

    def n_features(self, params: tuple) -> int:
        """D, the total number of columns (the groups' features added up).

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> g = mx.Gaussian("diag")
          >>> fam = Independent(((g, (0, 1)), (g, (2,))))
          >>> fam.n_features(fam.init_params(np.zeros((2, 3)), np.ones((4, 3))))
          3
        """
        return sum(family.n_features(p) for (family, _), p in zip(self.components, params))

    def params_layout(self, n_components: int, n_features: int) -> tuple:
        """Each group's layout on its columns; ``ValueError`` unless D is the number of columns the groups cover.

        Example:
          >>> import mixtures as mx
          >>> from mixtures import Independent
          >>> fam = Independent(((mx.Gaussian("diag"), (0, 2)), (mx.Poisson(), (1,))))
          >>> [leaf.shape for leaf in __import__("jax").tree.leaves(fam.params_layout(4, 3))]
          [(4, 2), (4, 2), (4, 1)]
        """
        if n_features != self.n_columns:
            raise ValueError(
                f"the groups of `components` cover {self.n_columns} columns; the parameters describe "
                f"{n_features}."
            )
        return tuple(family.params_layout(n_components, len(cols)) for family, cols in self.components)

    def n_free_parameters(self, n_components: int, n_features: int) -> int:
        """The sum of each group's free parameters for K components on its columns.

        Example:
          >>> import mixtures as mx
          >>> from mixtures import Independent
          >>> fam = Independent(((mx.Gaussian("diag"), (0, 1)), (mx.Gaussian("spherical"), (2,))))
          >>> fam.n_free_parameters(3, 3)  # 3 × (2 + 2) + 3 × (1 + 1)
          18
        """
        if n_features != self.n_columns:
            raise ValueError(
                f"`n_features` must be {self.n_columns}, the number of columns the groups cover; "
                f"received {n_features}."
            )
        return sum(family.n_free_parameters(n_components, len(cols)) for family, cols in self.components)

    def check_params(self, params: tuple) -> None:
        """Checks each group's parameters with its family; an error names the group and its columns."""
        for i, ((family, columns), p) in enumerate(zip(self.components, params)):
            try:
                family.check_params(p)
            except ValueError as err:
                raise ValueError(f"group {i} (columns {columns}) of {err}") from None

    def check_data(self, x) -> None:
        """Checks each group's columns with its family; errors name the row and the columns of ``x``.

        A group's ``ValueError`` is re-raised with the group's columns of
        ``x`` (column numbers in the family's own message are translated from
        the group's numbering to ``x``'s) and the first row at which the group
        fails (found by rechecking prefixes of the rows).

        Raises:
          ValueError: if ``x`` (N, D) does not have D columns, or a group's
            family rejects its columns.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> from mixtures import VonMisesFisher
          >>> fam = Independent(((mx.Gaussian("diag"), (0,)), (VonMisesFisher(), (1, 2))))
          >>> fam.check_data(np.array([[5.0, 0.6, 0.8], [1.0, 0.0, 0.0]]))
          Traceback (most recent call last):
          ...
          ValueError: VonMisesFisher(max_concentration=100000.0), which models columns (1, 2) of `x`,
          rejects row 1: row 1 of `x` has norm 0.0; von Mises–Fisher data must be unit vectors
          (norm 1 within a relative 1e-06). Normalise the rows: x / np.linalg.norm(x, axis=1, keepdims=True).
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_columns:
            raise ValueError(
                f"`x` must have shape (N, {self.n_columns}): the groups of `components` cover "
                f"{self.n_columns} columns; received shape {x.shape}."
            )
        for family, cols in self.components:
            block = x[:, list(cols)]
            try:
                family.check_data(block)
            except ValueError as err:
                where = f"column {cols[0]}" if len(cols) == 1 else f"columns {cols}"
                row = _first_failing_row(family, block)
                what = "its columns" if row is None else f"row {row}"
                message = _translate_columns(str(err), cols)
                raise ValueError(f"{family!r}, which models {where} of `x`, rejects {what}: {message}") from err

    # -- describing itself to the front ends ------------------------------------------------

    # -- priors: MAP-EM and variational Bayes, group by group ------------------------

    def check_prior(self, prior, x) -> tuple:
        """A tuple with one prior per group, each checked by its family on its columns.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> fam = Independent(((mx.Poisson(), (0,)), (mx.Bernoulli(), (1,))))
          >>> fam.check_prior(mx.ConjugatePrior(1.0, np.ones(1)), np.zeros((3, 2)))
          Traceback (most recent call last):
          ...
          TypeError: `prior` for an Independent family must be a tuple with one prior per group (2); received ConjugatePrior.
        """
        if not isinstance(prior, tuple) or hasattr(prior, "_fields") or len(prior) != len(self.components):
            raise TypeError(
                f"`prior` for an Independent family must be a tuple with one prior per group "
                f"({len(self.components)}); received {type(prior).__name__}."
            )
        return tuple(
            family.check_prior(part, _take(x, cols)) for (family, cols), part in zip(self.components, prior)
        )

    def default_prior(self, x, n_components: int, sample_weight=None) -> tuple:
        """Each group's default prior on its columns; a tuple."""
        return tuple(
            family.default_prior(_take(x, cols), n_components, sample_weight=sample_weight)
            for family, cols in self.components
        )

    def default_variational_prior(self, x, n_components: int, sample_weight=None) -> tuple:
        """Each group's default variational prior on its columns; a tuple."""
        return tuple(
            family.default_variational_prior(_take(x, cols), n_components, sample_weight=sample_weight)
            for family, cols in self.components
        )

    def map_step(self, stats: tuple, counts, previous: tuple, prior: tuple, weights) -> tuple:
        return tuple(
            family.map_step(s, counts, p, q, weights)
            for (family, _), s, p, q in zip(self.components, stats, previous, prior)
        )

    def log_prior(self, params: tuple, prior: tuple, weights):
        return sum(family.log_prior(p, q, weights) for (family, _), p, q in zip(self.components, params, prior))

    @property
    def conjugate(self) -> bool:
        """Whether every group's family has a conjugate posterior (variational Bayes)."""
        return all(family.conjugate for family, _ in self.components)

    def posterior_update(self, stats: tuple, counts, frame: tuple, prior: tuple) -> tuple:
        return tuple(
            family.posterior_update(s, counts, f, q)
            for (family, _), s, f, q in zip(self.components, stats, frame, prior)
        )

    def expected_params(self, posterior: tuple):
        parts = [family.expected_params(q) for (family, _), q in zip(self.components, posterior)]
        return tuple(params for params, _ in parts), sum(offsets for _, offsets in parts)

    def posterior_kl(self, posterior: tuple, prior: tuple):
        return sum(family.posterior_kl(q, p) for (family, _), q, p in zip(self.components, posterior, prior))

    def posterior_mean(self, posterior: tuple) -> tuple:
        return tuple(family.posterior_mean(q) for (family, _), q in zip(self.components, posterior))

    def predictive_log_prob(self, posterior: tuple, x):
        return sum(
            family.predictive_log_prob(q, _take(x, cols)) for (family, cols), q in zip(self.components, posterior)
        )

    def marginal(self, params: tuple, columns):
        """The marginal over columns of one group: that group's family's marginal; None across groups.

        When every column of ``columns`` belongs to one group, the marginal is
        the group's family's :meth:`~mixtures.Family.marginal` over those
        columns (numbered within the group), or the group itself when they are
        all its columns in its order. Columns from several groups give None.

        Example:
          >>> import numpy as np, mixtures as mx
          >>> from mixtures import Independent
          >>> fam = Independent(((mx.Gaussian("diag"), (0,)), (mx.Poisson(), (1, 2))))
          >>> p = (mx.Gaussian("diag").make_params(np.zeros((1, 1)), np.ones((1, 1))),
          ...      mx.Poisson().make_params(np.array([[2.0, 5.0]])))
          >>> family, params = fam.marginal(p, (2,))
          >>> family, params.rates.tolist()
          (Poisson(min_rate=1e-06), [[5.0]])
          >>> fam.marginal(p, (0, 1)) is None
          True
        """
        chosen = tuple(int(c) for c in columns)
        for (family, group), p in zip(self.components, params):
            if not set(chosen) <= set(group):
                continue
            local = tuple(group.index(c) for c in chosen)
            marginal = family.marginal(p, local)
            if marginal is None and local == tuple(range(len(group))):
                return family, p
            return marginal
        return None

    def parameter_table(self, params: tuple, columns) -> list:
        """Each group's own table, on the names of its columns."""
        return [
            row
            for (family, group), p in zip(self.components, params)
            for row in family.parameter_table(p, [columns[c] for c in group])
        ]


def _check_cover(every: list) -> None:
    """Raises ``ValueError`` unless ``every`` is a permutation of 0 … D − 1, D = len(every).

    Linear in D and never allocating beyond it, whatever the indices' values
    (a file may hold a column index of 10¹⁸).
    """
    d = len(every)
    seen = set()
    repeated, outside = [], []
    for c in every:
        if c in seen:
            repeated.append(c)
        elif not 0 <= c < d:
            outside.append(c)
        seen.add(c)
    if repeated:
        raise ValueError(
            f"`components` must use each column once; columns {_some(sorted(set(repeated)))} appear more than once."
        )
    if outside:
        missing = [c for c in range(d) if c not in seen]
        raise ValueError(
            f"`components` must cover the columns 0 … D − 1 exactly, D = {d} the number of columns named; "
            f"received columns {_some(sorted(outside))} outside that range, which leave out {_some(missing)}."
        )


def _some(values: list, limit: int = 20) -> str:
    """``values`` as a list, the first ``limit`` of them when there are more."""
    if len(values) <= limit:
        return str(values)
    return f"{str(values[:limit])[:-1]}, … ({len(values)} in all)]"


def _take(x, cols: tuple):
    """Columns ``cols`` of the last axis of x; a slice when they are consecutive."""
    if cols == tuple(range(cols[0], cols[0] + len(cols))):
        return x[..., cols[0] : cols[0] + len(cols)]
    return jnp.take(x, np.asarray(cols), axis=-1)


def _first_failing_row(family: Family, block: np.ndarray) -> int | None:
    """The first row r such that the rows up to r fail ``check_data`` while those before pass.

    Returns None when the failure is not tied to a row (the first such row
    also passes on its own, or every prefix passes).
    """

    def fails(rows):
        try:
            family.check_data(rows)
        except ValueError:
            return True
        return False

    lo, hi = 0, block.shape[0]  # invariant: block[:lo] passes, block[:hi] fails
    if lo == hi or not fails(block[:hi]):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(block[:mid]):
            hi = mid
        else:
            lo = mid
    row = hi - 1
    return row if fails(block[row : row + 1]) else None


def _translate_columns(message: str, cols: tuple) -> str:
    """Renumbers "column j" in a group's message to the group's j-th column of ``x``."""

    def renumber(match):
        j = int(match.group(1))
        return f"column {cols[j]}" if j < len(cols) else match.group(0)

    return re.sub(r"\bcolumn (\d+)\b", renumber, message)
