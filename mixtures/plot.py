"""Figures of mixtures and fits, drawn with matplotlib (the optional extra ``jax-mixtures[plot]``).

Every function draws into ``ax`` (default: matplotlib's current Axes),
returns that Axes, and validates its input on the host first, raising
``ValueError`` or ``TypeError`` naming the argument. Component k is drawn in
the k-th colour of :func:`component_colors` everywhere, so ellipses, points
and legends of one mixture agree.

For data with more than two columns, ``dims=(i, j)`` picks the pair of
columns to draw. :func:`histogram` draws one column (``dim=j``) with the
mixture's density and its weighted components over it; it is the picture
of one-column data, which :func:`fit_summary` draws when D = 1.

What is drawn comes from the family
(:meth:`~mixtures.Family.marginal`, :attr:`~mixtures.Family.density_on_the_plane`,
:meth:`~mixtures.Family.extent`, :meth:`~mixtures.Family.label`), so a family
of your own is drawn as the built-in ones are. A Gaussian mixture's marginal
over two columns is again a Gaussian mixture (same weights, the means'
entries i, j and the covariances' 2×2 blocks), which :func:`ellipses` and
:func:`density` draw; for families whose columns are independent given the
component (``Exponential``, ``Gamma``, ``StudentT``, ``Poisson``,
``Bernoulli``, ``Categorical``) the marginal keeps the parameters of the
chosen columns.

``import mixtures`` does not import this module or matplotlib; import it
as ``from mixtures import plot``.
"""

from __future__ import annotations

import math
import numbers

import jax
import numpy as np

try:
    import matplotlib
    import matplotlib.axes
    import matplotlib.colors
    import matplotlib.patches
    import matplotlib.ticker
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mixtures.plot needs matplotlib; install it with: pip install 'jax-mixtures[plot]'"
    ) from error

from mixtures._src.core import blocks
from mixtures._src.core.progress import Progress
from mixtures._src.engine.em import FitResult
from mixtures._src.families.gaussian.family import Gaussian
from mixtures._src.core.mixture import Mixture, component_log_probs, rows_log_prob
from mixtures._src.fitting.selection import CRITERIA, Selection

__all__ = [
    "clusters",
    "component_colors",
    "criterion",
    "density",
    "ellipses",
    "fit_summary",
    "gaussian_marginal",
    "histogram",
    "history",
]


# -- shared helpers -------------------------------------------------------------


def component_colors(n_components: int) -> list:
    """The colour of each component, as RGBA tuples: tab10, tab20 beyond 10, viridis beyond 20.

    Args:
      n_components: number of components K ≥ 1.

    Returns:
      A list of K RGBA tuples.

    Example:
      >>> from mixtures import plot
      >>> [tuple(round(c, 3) for c in rgba) for rgba in plot.component_colors(2)]
      [(0.122, 0.467, 0.706, 1.0), (1.0, 0.498, 0.055, 1.0)]
    """
    k = _count(n_components, "n_components")
    if k <= 10:
        rgba = matplotlib.colormaps["tab10"](np.arange(k))
    elif k <= 20:
        rgba = matplotlib.colormaps["tab20"](np.arange(k))
    else:
        rgba = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, k))
    return [tuple(float(c) for c in row) for row in rgba]


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive integer; received {value!r}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    return int(value)


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        return plt.gca()
    if not isinstance(ax, matplotlib.axes.Axes):
        raise TypeError(f"`ax` must be a matplotlib Axes or None; received {type(ax).__name__}.")
    return ax


def _mixture(mixture) -> Mixture:
    if not isinstance(mixture, Mixture):
        raise TypeError(f"`mixture` must be a mixtures.Mixture; received {type(mixture).__name__}.")
    return mixture


def _dims(dims, n_features: int) -> tuple[int, int]:
    """Checks ``dims``: two distinct column indices in 0..D−1."""
    try:
        pair = tuple(dims)
    except TypeError:
        pair = None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in pair)
    ):
        raise TypeError(f"`dims` must be a pair of column indices such as (0, 1); received {dims!r}.")
    i, j = (int(v) for v in pair)
    if n_features < 2:
        raise ValueError(
            f"`dims`: drawing a pair of columns needs D ≥ 2 columns; the mixture has D = {n_features}. "
            "Draw one column with plot.histogram."
        )
    if not (0 <= i < n_features and 0 <= j < n_features):
        raise ValueError(f"`dims` must be column indices in 0..{n_features - 1} (D = {n_features}); received {dims!r}.")
    if i == j:
        raise ValueError(f"`dims` must name two different columns; received {dims!r}.")
    return i, j


def _data(x, n_features: int) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise TypeError(f"`x` must hold real numbers; received dtype {array.dtype}.")
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"`x` must have shape (N, D) with N ≥ 1; received shape {array.shape}.")
    if array.shape[1] != n_features:
        raise ValueError(f"`x` has {array.shape[1]} columns; the mixture has D = {n_features}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("`x` must be finite; it holds NaN or infinite values.")
    return array


def gaussian_marginal(mixture, dims=(0, 1)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and covariances of a Gaussian mixture's marginal over two columns.

    Every covariance type is expanded to full 2×2 matrices, in float64.

    Args:
      mixture: a :class:`~mixtures.Mixture` whose components' marginal
        (:meth:`~mixtures.Family.marginal`) is :class:`~mixtures.Gaussian`:
        a Gaussian mixture, or one of a family of your own that says so.
      dims: the pair of columns (i, j).

    Returns:
      ``(weights (K,), means (K, 2), covariances (K, 2, 2))`` as NumPy arrays.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 4.0, 9.0]])), g)
      >>> w, means, covs = plot.gaussian_marginal(m, dims=(2, 0))
      >>> means.tolist(), covs.round(6).tolist()
      ([[2.0, 0.0]], [[[9.0, 0.0], [0.0, 1.0]]])
    """
    mixture = _mixture(mixture)
    pair = _dims(dims, mixture.n_features)
    marginal = _marginal(mixture, pair)
    if marginal is None or not isinstance(marginal.family, Gaussian):
        raise ValueError(
            "`mixture` must have Gaussian components (or components whose marginal is Gaussian) for ellipses "
            f"and marginals; its family is {mixture.family!r}."
        )
    means = np.asarray(marginal.params.means, np.float64)
    covs = np.asarray(marginal.params.covariances, np.float64)
    if covs.ndim != 3:  # a marginal of another covariance type than "full"
        covs = (covs.reshape(len(means), -1, 1) if covs.ndim == 2 else covs[:, None, None]) * np.eye(2)
    return np.asarray(marginal.weights, np.float64), means, covs


def _marginal(mixture: Mixture, dims: tuple[int, int]) -> Mixture | None:
    """The mixture of the two columns ``dims``, in that order, or None if the family does not know it."""
    marginal = mixture.family.marginal(mixture.params, dims)
    if marginal is None:
        return None
    family, params = marginal
    return Mixture(mixture.weights, params, family)


# -- the figures --------------------------------------------------------------


def ellipses(mixture, *, ax=None, dims=(0, 1), n_std=(1.0, 2.0), colors=None, **kwargs):
    """Draws each Gaussian component as ellipses of constant Mahalanobis distance.

    For component k with 2×2 (marginal) covariance Σₖ = V diag(λ₁, λ₂) Vᵀ,
    λ₁ ≥ λ₂, the ellipse at ``s`` standard deviations is centred on the mean
    with width 2s√λ₁ along the first eigenvector (at its angle from the x
    axis) and height 2s√λ₂. Fill transparency is ``alpha`` (default 0.35)
    times πₖ / maxⱼ πⱼ, so light components look light; components of weight
    zero are not drawn.

    Args:
      mixture: a :class:`~mixtures.Mixture` of :class:`~mixtures.Gaussian`
        components, any covariance type.
      ax: the matplotlib Axes to draw into (default: the current one).
      dims: the pair of columns (i, j) drawn as (x, y).
      n_std: a positive number or a sequence of them: one ellipse per
        component and value.
      colors: optional sequence of K colours (default :func:`component_colors`).
      **kwargs: passed to every ``matplotlib.patches.Ellipse`` (e.g.
        ``alpha``, ``linewidth``, ``fill``), overriding the defaults.

    Returns:
      The Axes.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> g = mx.Gaussian("spherical")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0, 0.0], [4.0, 0.0]]), np.ones(2)), g)
      >>> fig, ax = plt.subplots()
      >>> ax = plot.ellipses(m, ax=ax, n_std=2.0)
      >>> [(p.width, p.height) for p in ax.patches]
      [(4.0, 4.0), (4.0, 4.0)]
      >>> plt.close(fig)
    """
    weights, means, covs = gaussian_marginal(mixture, dims)
    stds = _n_std(n_std)
    colors = _colors(colors, len(weights))
    ax = _axes(ax)
    alpha = kwargs.pop("alpha", 0.35)
    top = weights.max()
    for k in range(len(weights)):
        if weights[k] <= 0:
            continue
        values, vectors = np.linalg.eigh(covs[k])  # ascending
        values = np.clip(values, 0.0, None)
        angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
        for s in stds:
            options = {
                "facecolor": matplotlib.colors.to_rgba(colors[k], alpha * weights[k] / top),
                "edgecolor": colors[k],
                "linewidth": 1.2,
            }
            options.update(kwargs)
            patch = matplotlib.patches.Ellipse(
                tuple(means[k]), 2 * s * math.sqrt(values[1]), 2 * s * math.sqrt(values[0]), angle=angle, **options
            )
            ax.add_patch(patch)
    ax.autoscale_view()
    return ax


def _n_std(n_std) -> list[float]:
    values = [n_std] if isinstance(n_std, numbers.Real) else n_std
    try:
        values = [float(v) for v in values if not isinstance(v, bool)] if values is not None else None
    except (TypeError, ValueError):
        values = None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"`n_std` must be a positive number or a non-empty sequence of them; received {n_std!r}.")
    return values


def _colors(colors, k: int) -> list:
    if colors is None:
        return component_colors(k)
    colors = list(colors)
    if len(colors) != k:
        raise ValueError(f"`colors` must hold one colour per component ({k}); received {len(colors)}.")
    for c in colors:
        if not matplotlib.colors.is_color_like(c):
            raise ValueError(f"`colors` holds {c!r}, which matplotlib does not read as a colour.")
    return colors


def density(mixture, *, ax=None, dims=(0, 1), x=None, levels=12, grid=200, depth=12.0, **kwargs):
    """Draws contour lines of the mixture's log-density over two columns.

    The log-density is evaluated by ``Mixture.log_prob`` on a ``grid`` ×
    ``grid`` mesh. With D > 2 it is the marginal density of the two columns
    (see the module docstring for the families that have one). An integer
    ``levels`` draws that many contours evenly spaced in log-density from
    the mesh's maximum down to ``depth`` below it (the highest contour
    ``depth / levels`` below the maximum); a sequence gives the
    log-density values themselves.

    Args:
      mixture: a :class:`~mixtures.Mixture` of a family with a density on
        the plane (:attr:`~mixtures.Family.density_on_the_plane`) whose
        two-column marginal is known (:meth:`~mixtures.Family.marginal`:
        Gaussian, Exponential, Gamma, StudentT), or any such family with
        D = 2 columns.
      ax: the matplotlib Axes (default: the current one).
      dims: the pair of columns (i, j) drawn as (x, y).
      x: optional (N, D) data; the mesh then spans its columns ``dims``
        (plus 5% margins). Without it, the mesh spans every component's
        centre ± 3 spreads as :meth:`~mixtures.Family.extent` gives them
        (mean ± 3 standard deviations; location ± 3 scales for StudentT).
      levels: a positive number of contours, or an increasing sequence of
        log-density values.
      grid: mesh points per axis, at least 2.
      depth: positive span of log-density covered by integer ``levels``.
      **kwargs: passed to ``Axes.contour`` (e.g. ``cmap``, ``linewidths``).

    Returns:
      The Axes; ``ax.collections[-1]`` is the ``ContourSet``.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> g = mx.Gaussian("full")
      >>> m = mx.Mixture(np.array([1.0]), g.make_params(np.zeros((1, 2)), np.eye(2)[None]), g)
      >>> fig, ax = plt.subplots()
      >>> ax = plot.density(m, ax=ax, levels=4, depth=8.0, grid=101)
      >>> (ax.collections[-1].levels + np.log(2 * np.pi)).round(6).tolist()  # the peak is -log 2π
      [-8.0, -6.0, -4.0, -2.0]
      >>> plt.close(fig)
    """
    mixture = _mixture(mixture)
    d = mixture.n_features
    dims = _dims(dims, d)
    grid = _count(grid, "grid")
    if grid < 2:
        raise ValueError(f"`grid` must be at least 2; received {grid}.")
    if isinstance(depth, bool) or not isinstance(depth, numbers.Real) or not (math.isfinite(depth) and depth > 0):
        raise ValueError(f"`depth` must be a positive number; received {depth!r}.")
    explicit = None
    if not isinstance(levels, numbers.Integral) or isinstance(levels, bool):
        explicit = np.asarray(levels, dtype=np.float64) if not isinstance(levels, (str, bytes)) else None
        if explicit is None or explicit.ndim != 1 or explicit.size == 0 or np.any(np.diff(explicit) <= 0):
            raise ValueError(
                f"`levels` must be a positive integer or an increasing sequence of numbers; received {levels!r}."
            )
    else:
        _count(levels, "levels")
    data = None if x is None else _data(x, d)

    _check_plane_family(mixture)
    plane, order = _marginal(mixture, dims), (0, 1)
    if plane is None:
        if d != 2:
            raise ValueError(
                f"`mixture`: density contours over two of D = {d} columns need the family's two-column marginal "
                f"(Family.marginal); {mixture.family!r} does not give one."
            )
        plane, order = mixture, dims

    extent = None if data is not None else plane.family.extent(plane.params)
    if data is not None:
        lo, hi = data[:, list(dims)].min(axis=0), data[:, list(dims)].max(axis=0)
        margin = 0.05 * np.where(hi > lo, hi - lo, 1.0)
        lo, hi = lo - margin, hi + margin
    elif extent is None:
        raise ValueError(f"`x`: give the data to set the limits; {mixture.family!r} has no default extent.")
    else:
        centres, spreads = (np.asarray(a, np.float64)[:, list(order)] for a in extent)
        lo, hi = (centres - 3 * spreads).min(axis=0), (centres + 3 * spreads).max(axis=0)
    gx, gy = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    mesh_x, mesh_y = np.meshgrid(gx, gy)
    points = np.empty((grid * grid, 2))
    points[:, order[0]] = mesh_x.ravel()
    points[:, order[1]] = mesh_y.ravel()
    # The mesh may reach outside the family's domain, which Mixture.log_prob refuses.
    log_p = _log_density(plane, points).reshape(grid, grid)
    finite = np.isfinite(log_p)
    if not finite.any():
        raise ValueError("`mixture`: its log-density is not finite anywhere on the mesh; check `x` or `dims`.")
    if explicit is None:
        top = log_p[finite].max()
        explicit = np.linspace(top - depth, top, levels, endpoint=False)
    ax = _axes(ax)
    options = {"cmap": "viridis", "linewidths": 1.0}
    options.update(kwargs)
    ax.contour(mesh_x, mesh_y, np.ma.masked_invalid(log_p), levels=explicit, **options)
    return ax


def _has_density(mixture: Mixture, dims: tuple[int, int]) -> bool:
    """Whether :func:`density` can draw ``mixture``: a density on the plane, and a known marginal or D = 2."""
    if not mixture.family.density_on_the_plane:
        return False
    return mixture.n_features == 2 or mixture.family.marginal(mixture.params, dims) is not None


def _check_plane_family(mixture: Mixture) -> None:
    if not mixture.family.density_on_the_plane:
        raise ValueError(
            f"`mixture`: density contours need a density on the plane; {mixture.family!r} is "
            "discrete or lives on the sphere."
        )


def clusters(mixture, x, *, ax=None, dims=(0, 1), colors=None, **kwargs):
    """Scatters the rows of ``x``, each coloured by its hard cluster ``mixture.predict(x)``.

    Args:
      mixture: a :class:`~mixtures.Mixture` of any family.
      x: (N, D) data.
      ax: the matplotlib Axes (default: the current one).
      dims: the pair of columns (i, j) drawn as (x, y).
      colors: optional sequence of K colours (default :func:`component_colors`).
      **kwargs: passed to ``Axes.scatter`` (e.g. ``s``, ``marker``).

    Returns:
      The Axes; ``ax.collections[-1]`` holds the points, row n coloured as
      component ``predict(x)[n]``.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> g = mx.Gaussian("spherical")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0, 0.0], [4.0, 0.0]]), np.ones(2)), g)
      >>> fig, ax = plt.subplots()
      >>> ax = plot.clusters(m, np.array([[0.5, 0.0], [3.0, 1.0]]), ax=ax)
      >>> ax.collections[-1].get_offsets().tolist()
      [[0.5, 0.0], [3.0, 1.0]]
      >>> plt.close(fig)
    """
    mixture = _mixture(mixture)
    dims = _dims(dims, mixture.n_features)
    data = _data(x, mixture.n_features)
    colors = _colors(colors, mixture.n_components)
    labels = np.asarray(mixture.predict(data))
    ax = _axes(ax)
    options = {"s": 12, "alpha": 0.85, "linewidths": 0}
    options.update(kwargs)
    rgba = np.array([matplotlib.colors.to_rgba(c) for c in colors])
    ax.scatter(data[:, dims[0]], data[:, dims[1]], c=rgba[labels], **options)
    return ax


# -- one column ---------------------------------------------------------------


def histogram(mixture, x, *, ax=None, dim=0, bins="auto", responsibilities=False, colors=None, grid=400, **kwargs):
    """Draws a histogram of one column with the mixture's density and its weighted components.

    Column ``dim`` of ``x`` is drawn as a density-normalised histogram (bar
    areas sum to one). Over it, in black, the mixture's density
    p(t) = Σₖ πₖ pₖ(t) of that column and, in each component's colour, the
    weighted component densities πₖ pₖ(t), which add up to it. With D > 1
    columns these are the densities of the family's one-column marginal
    (:meth:`~mixtures.Family.marginal`); with D = 1, of the mixture itself.

    A continuous family's curves are evaluated at ``grid`` points spanning
    the histogram's bins (or only the data's range, where the bins reach
    outside the family's domain). A family without a density on the line
    (:attr:`~mixtures.Family.density_on_the_plane` False: ``Poisson``,
    ``Bernoulli``, ``Categorical``) has probability masses at the integers:
    the histogram then has one bar of width one centred on each integer from
    the column's least to its greatest value, and the curves are the masses
    at those integers, drawn as points (joined by lines) over the bars, so
    each bar's frequency faces the mixture's mass of its integer.

    Args:
      mixture: a :class:`~mixtures.Mixture` with D = 1, or of a family whose
        one-column marginal is known (every built-in family but
        ``VonMisesFisher``, whose columns live together on the sphere).
      x: (N, D) data in the family's domain.
      ax: the matplotlib Axes (default: the current one).
      dim: the column drawn, in 0..D−1.
      bins: the histogram's bins for a continuous family, as
        ``numpy.histogram_bin_edges`` takes them: a number, the name of a
        rule ("auto", "fd", "sturges", ...) or increasing edges. A discrete
        family's bins are the unit ones and take only "auto".
      responsibilities: also draw rₖ(t) = πₖ pₖ(t) / p(t) at the same
        points, stacked so that the bands fill [0, 1], in a new Axes beneath
        ``ax`` that shares its x axis. A subplot's cell is split 3:1 between
        the two (so layout engines place both); any other Axes gives up the
        bottom of its rectangle.
      colors: optional sequence of K colours (default :func:`component_colors`).
      grid: number of points of a continuous family's curves, at least 2.
      **kwargs: passed to ``Axes.hist`` (e.g. ``color``, ``alpha``).

    Returns:
      ``ax``, the Axes of the histogram. Its last K + 1 lines are the
      mixture's density, then the K weighted components, with the points of
      evaluation as x data. With ``responsibilities=True`` the panel is the
      figure's newest Axes, ``ax.get_figure(root=False).axes[-1]``; it holds
      the x tick labels (label the x axis there), and its ``collections``
      are the K stacked bands, component 0 at the bottom.

    Raises:
      TypeError: if ``mixture``, ``ax``, ``dim``, ``colors`` or ``grid`` has
        the wrong type, or ``x`` does not hold real numbers.
      ValueError: if ``x`` or ``dim`` does not fit the mixture, ``x`` is
        outside the family's domain, the family has no one-column marginal,
        or ``bins`` is not what NumPy reads as bins.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> rates = mx.Poisson().make_params(np.array([[1.0], [6.0]]))
      >>> m = mx.Mixture(np.array([0.5, 0.5]), rates, mx.Poisson())
      >>> fig, ax = plt.subplots()
      >>> ax = plot.histogram(m, np.array([[0.0], [1.0], [5.0], [7.0]]), ax=ax)
      >>> mixture_line = ax.lines[-3]
      >>> mixture_line.get_xdata().tolist()  # the masses at 0..7
      [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
      >>> [round(float(p), 4) for p in mixture_line.get_ydata()[:2]]  # ½ e⁻¹ + ½ e⁻⁶, ½ e⁻¹ + 3 e⁻⁶
      [0.1852, 0.1914]
      >>> plt.close(fig)
    """
    mixture = _mixture(mixture)
    d = mixture.n_features
    dim = _dim(dim, d)
    data = _data(x, d)
    colors = _colors(colors, mixture.n_components)
    grid = _count(grid, "grid")
    if grid < 2:
        raise ValueError(f"`grid` must be at least 2; received {grid}.")
    if not isinstance(responsibilities, (bool, np.bool_)):
        raise TypeError(f"`responsibilities` must be True or False; received {responsibilities!r}.")
    line = _one_column(mixture, dim)
    mixture.family.check_data(data)
    column = data[:, dim].astype(np.float64)
    discrete = not line.family.density_on_the_plane
    if discrete:
        if not (isinstance(bins, str) and bins == "auto"):
            raise ValueError(
                f"`bins`: {mixture.family!r} has probability masses at the integers, drawn with one bar per "
                f"integer; leave `bins` at 'auto'. Received {bins!r}."
            )
        if not np.all(column == np.round(column)):
            raise ValueError(
                f"`x`: column {dim} must hold integers, the points where {mixture.family!r} has probability "
                "masses."
            )
        points = np.arange(column.min(), column.max() + 1.0)
        edges = np.append(points, points[-1] + 1.0) - 0.5
    else:
        edges = _bin_edges(column, bins)
        points = np.linspace(edges[0], edges[-1], grid)
        try:
            line.family.check_data(points[:, None])
        except ValueError:  # the bins reach outside the family's domain: stay within the data's range
            points = np.linspace(max(edges[0], column.min()), min(edges[-1], column.max()), grid)
    weighted = _weighted_log_probs(line, points)  # (G, K): log πₖ + log pₖ(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        top = weighted.max(axis=1, keepdims=True)
        shift = np.where(np.isfinite(top), top, 0.0)
        log_total = shift + np.log(np.exp(weighted - shift).sum(axis=1, keepdims=True))
        shares = np.where(np.isfinite(log_total), np.exp(weighted - log_total), np.nan)

    ax = _axes(ax)
    options = {"color": "0.8", "edgecolor": "white", "linewidth": 0.5, "label": "data"}
    options.update(kwargs)
    ax.hist(column, bins=edges, density=True, **options)
    style = {"marker": "o", "markersize": 3.5} if discrete else {}
    ax.plot(points, np.exp(log_total[:, 0]), color="k", linewidth=1.8, label="mixture", **style)
    for k in range(mixture.n_components):
        ax.plot(points, np.exp(weighted[:, k]), color=colors[k], linewidth=1.2, label=f"component {k}", **style)
    ax.set_ylabel("probability" if discrete else "density")
    if discrete:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if mixture.n_components <= 10:
        ax.legend(fontsize="small")
    if responsibilities:
        panel = _panel_beneath(ax)
        panel.stackplot(points, shares.T, colors=colors, alpha=0.85, linewidth=0, step="mid" if discrete else None)
        panel.set_ylim(0.0, 1.0)
        panel.set_yticks([0.0, 0.5, 1.0])
        panel.set_ylabel("responsibility")
        ax.tick_params(labelbottom=False)
    return ax


def _dim(dim, n_features: int) -> int:
    """Checks ``dim``: one column index in 0..D−1."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"`dim` must be a column index such as 0; received {dim!r}.")
    if not 0 <= dim < n_features:
        raise ValueError(f"`dim` must be a column index in 0..{n_features - 1} (D = {n_features}); received {dim!r}.")
    return int(dim)


def _one_column(mixture: Mixture, dim: int) -> Mixture:
    """The mixture of column ``dim``: the family's marginal, or the mixture itself when D = 1."""
    marginal = mixture.family.marginal(mixture.params, (dim,))
    if marginal is not None:
        family, params = marginal
        return Mixture(mixture.weights, params, family)
    if mixture.n_features == 1:
        return mixture
    raise ValueError(
        f"`mixture`: drawing column {dim} of D = {mixture.n_features} needs the family's one-column marginal "
        f"(Family.marginal), and {mixture.family!r} gives none; a family whose columns are tied together "
        "(VonMisesFisher lives on the sphere) cannot be drawn one column at a time."
    )


def _panel_beneath(ax):
    """A new Axes beneath ``ax``, sharing its x axis; ``ax`` shrinks to make room.

    A subplot's cell is split 3:1 between them (so layout engines place
    both); another Axes gives the bottom 30% of its rectangle to the panel.
    """
    figure = ax.get_figure(root=False)
    cell = ax.get_subplotspec()
    if cell is not None:
        rows = cell.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
        ax.set_subplotspec(rows[0])
        return figure.add_subplot(rows[1], sharex=ax)
    x0, y0, width, height = ax.get_position().bounds
    ax.set_position((x0, y0 + 0.3 * height, width, 0.7 * height))
    return figure.add_axes((x0, y0, width, 0.22 * height), sharex=ax)


def _bin_edges(column: np.ndarray, bins) -> np.ndarray:
    """``numpy.histogram_bin_edges`` of the column; its errors re-raised naming ``bins``."""
    expected = "a positive number of bins, a NumPy rule such as 'auto' or increasing bin edges"
    if isinstance(bins, (bool, np.bool_)):
        raise TypeError(f"`bins` must be {expected}; received {bins!r}.")
    try:
        edges = np.histogram_bin_edges(column, bins=bins)
    except (TypeError, ValueError) as error:
        raise type(error)(f"`bins` must be {expected}; received {bins!r} (NumPy: {error}).") from None
    if len(edges) < 2 or not np.all(np.isfinite(edges)):
        raise ValueError(f"`bins` must give finite bin edges; received {bins!r}.")
    return edges.astype(np.float64)


_component_log_probs = jax.jit(component_log_probs)


def _log_density(mixture: Mixture, points: np.ndarray) -> np.ndarray:
    """(G,) log p(x) at points (G, D), in float64 on the host, without the data check."""
    rows = jax.numpy.asarray(np.asarray(points, dtype=np.dtype(mixture.dtype)))
    chunk = blocks.default_chunk_size(mixture.n_components, mixture.n_features)
    return np.asarray(rows_log_prob(mixture, rows, chunk), np.float64)


def _weighted_log_probs(mixture: Mixture, points: np.ndarray) -> np.ndarray:
    """(G, K) log πₖ + log pₖ(t) at one-column points t (G,), in float64 on the host."""
    rows = np.asarray(points, dtype=np.dtype(mixture.dtype))[:, None]
    return np.asarray(_component_log_probs(mixture, rows), np.float64)


def history(result, *, ax=None, **kwargs):
    """Draws the mean log-likelihood per sample against the EM iteration.

    ``result`` may be

    - a :class:`~mixtures.FitResult`: its ``history``, the best restart's
      (one value per iteration run; NaN values, as in the history of
      :func:`mixtures.engine.fit_loop`, are not drawn);
    - an array of one history (T,) or of one per restart (R, T), NaN after
      a shorter restart's last iteration: one line per row;
    - a sequence of :class:`~mixtures.Progress` reports, as collected by
      ``mx.fit(..., callback=reports.append)``: one line per restart, with
      every restart's iterations (``FitResult`` keeps only the best one's).

    Iteration t (1-based) is drawn at x = t with the value before its M-step,
    as in ``FitResult.history``.

    Args:
      result: one of the above.
      ax: the matplotlib Axes (default: the current one).
      **kwargs: passed to every ``Axes.plot`` call.

    Returns:
      The Axes, one ``Line2D`` per history (restart r is labelled
      "restart r" when there are several).

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from mixtures import plot
      >>> fig, ax = plt.subplots()
      >>> ax = plot.history(np.array([-3.0, -2.5, -2.4, np.nan]), ax=ax)
      >>> ax.lines[0].get_xydata().tolist()
      [[1.0, -3.0], [2.0, -2.5], [3.0, -2.4]]
      >>> plt.close(fig)
    """
    histories = _histories(result)
    ax = _axes(ax)
    several = len(histories) > 1
    longest = max(int(np.isfinite(values).sum()) for values in histories)
    for r, values in enumerate(histories):
        keep = np.isfinite(values)
        options = {"marker": "." if longest < 50 else None, "linewidth": 1.2}
        if several:
            options["label"] = f"restart {r}"
        options.update(kwargs)
        ax.plot(np.flatnonzero(keep) + 1.0, values[keep], **options)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("mean log-likelihood per sample")
    if several and len(histories) <= 10:
        ax.legend(fontsize="small")
    return ax


def _histories(result) -> list[np.ndarray]:
    if isinstance(result, FitResult):
        values = np.asarray(result.history, np.float64)
        if values.ndim != 1:
            raise ValueError(
                f"`result`: a FitResult's history must be one-dimensional; received shape {values.shape}."
            )
        return [values]
    if isinstance(result, (list, tuple)) and result and all(isinstance(p, Progress) for p in result):
        restarts = sorted({p.restart for p in result})
        length = max(p.iteration for p in result)
        table = np.full((len(restarts), length), np.nan)
        row = {r: i for i, r in enumerate(restarts)}
        for p in result:
            table[row[p.restart], p.iteration - 1] = p.log_likelihood
        return list(table)
    try:
        values = np.asarray(result, np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim not in (1, 2) or values.size == 0:
        raise TypeError(
            "`result` must be a FitResult, an array of shape (T,) or (R, T), or a list of mx.Progress reports; "
            f"received {type(result).__name__}."
        )
    values = np.atleast_2d(values)
    if not np.isfinite(values).any(axis=1).all():
        raise ValueError("`result`: every history must hold at least one finite value.")
    return list(values)


def criterion(selection_or_table, *, ax=None, criterion="bic", **kwargs):
    """Draws an information criterion against the number of components K.

    One line per family in the table; the candidate with the lowest value is
    circled (ties: the first, as :func:`mixtures.select` breaks them).

    Args:
      selection_or_table: what :func:`mixtures.select` returns (a
        :class:`~mixtures.Selection`) or its ``table`` (a list of dicts with
        keys ``family``, ``n_components`` and the criterion).
      ax: the matplotlib Axes (default: the current one).
      criterion: "bic", "aic" or "icl".
      **kwargs: passed to every ``Axes.plot`` call of the lines.

    Returns:
      The Axes; ``ax.lines`` holds one line per family, then the marker of
      the lowest value.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, mixtures as mx
      >>> from mixtures import plot
      >>> table = [{"family": mx.Gaussian(), "n_components": k, "bic": b} for k, b in [(1, 5.0), (2, 3.0), (3, 4.0)]]
      >>> fig, ax = plt.subplots()
      >>> ax = plot.criterion(table, ax=ax)
      >>> ax.lines[0].get_xydata().tolist(), ax.lines[-1].get_xydata().tolist()
      ([[1.0, 5.0], [2.0, 3.0], [3.0, 4.0]], [[2.0, 3.0]])
      >>> plt.close(fig)
    """
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {CRITERIA}; received {criterion!r}.")
    table = selection_or_table.table if isinstance(selection_or_table, Selection) else selection_or_table
    if not isinstance(table, (list, tuple)) or not table or not all(isinstance(row, dict) for row in table):
        raise TypeError(
            "`selection_or_table` must be what mx.select returns or its `table`, a non-empty list of dicts; "
            f"received {type(selection_or_table).__name__}."
        )
    for i, row in enumerate(table):
        missing = {"n_components", criterion} - set(row)
        if missing:
            raise ValueError(f"`selection_or_table`: row {i} lacks the keys {sorted(missing)}.")
    families = []
    for row in table:
        if row.get("family") not in families:
            families.append(row.get("family"))
    ax = _axes(ax)
    best = None
    for f in families:
        rows = sorted((r for r in table if r.get("family") == f), key=lambda r: r["n_components"])
        ks = np.array([r["n_components"] for r in rows], np.float64)
        values = np.array([r[criterion] for r in rows], np.float64)
        options = {"marker": "o", "markersize": 4, "label": f.label() if f is not None else "mixture"}
        options.update(kwargs)
        ax.plot(ks, values, **options)
        for k, v in zip(ks, values):
            if np.isfinite(v) and (best is None or v < best[1]):
                best = (k, v)
    if best is not None:
        ax.plot([best[0]], [best[1]], marker="o", markersize=12, markerfacecolor="none", color="k", linestyle="none")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(families) > 1:
        ax.legend(fontsize="small")
    return ax


def fit_summary(mixture, x, *, ax=None, dims=(0, 1), n_std=(1.0, 2.0), levels=12, grid=200):
    """Density contours, points coloured by hard cluster and component ellipses, in one call.

    The contours are drawn when :func:`density` supports the family, the
    ellipses when its two-column marginal is Gaussian; the points always.
    One-column data (D = 1) get :func:`histogram` instead, with the
    responsibilities beneath (``dims``, ``n_std`` and ``levels`` are then
    unused, and ``grid`` is the number of points of the curves).

    Args:
      mixture: a :class:`~mixtures.Mixture`.
      x: (N, D) data; also sets the limits.
      ax: the matplotlib Axes (default: the current one).
      dims: the pair of columns (i, j) drawn as (x, y).
      n_std: passed to :func:`ellipses`.
      levels: passed to :func:`density`.
      grid: passed to :func:`density`.

    Returns:
      The Axes, titled with K and the family. For D = 1, the Axes of the
      histogram; the responsibilities' panel beneath it is the figure's
      newest Axes and holds the x tick labels.

    Example:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import matplotlib.pyplot as plt, numpy as np, mixtures as mx
      >>> from mixtures import plot
      >>> g = mx.Gaussian("spherical")
      >>> m = mx.Mixture(np.array([0.5, 0.5]), g.make_params(np.array([[0.0, 0.0], [4.0, 0.0]]), np.ones(2)), g)
      >>> fig, ax = plt.subplots()
      >>> ax = plot.fit_summary(m, np.array([[0.5, 0.0], [3.0, 1.0]]), ax=ax, grid=20)
      >>> len(ax.patches), ax.get_title()
      (4, '2-component mixture, Gaussian (spherical)')
      >>> plt.close(fig)
    """
    mixture = _mixture(mixture)
    if mixture.n_features == 1:
        data = _data(x, 1)
        ax = histogram(mixture, data, ax=ax, responsibilities=True, grid=grid)
        ax.set_title(f"{mixture.n_components}-component mixture, {mixture.family.label()}")
        return ax
    dims = _dims(dims, mixture.n_features)
    data = _data(x, mixture.n_features)
    ax = _axes(ax)
    family = mixture.family
    if _has_density(mixture, dims):
        density(mixture, ax=ax, dims=dims, x=data, levels=levels, grid=grid, cmap="Greys", alpha=0.6)
    clusters(mixture, data, ax=ax, dims=dims)
    marginal = _marginal(mixture, dims)
    if marginal is not None and isinstance(marginal.family, Gaussian):
        ellipses(mixture, ax=ax, dims=dims, n_std=n_std)
    lo, hi = data[:, list(dims)].min(axis=0), data[:, list(dims)].max(axis=0)
    margin = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
    ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
    ax.set_title(f"{mixture.n_components}-component mixture, {family.label()}")
    return ax
