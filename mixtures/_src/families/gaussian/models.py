"""mclust's fourteen covariance models: their names, layouts, parameter counts and M-steps.

Each model writes a component's covariance as Σₖ = λₖ Dₖ Aₖ Dₖᵀ: a volume
λₖ = |Σₖ|^(1/D), a shape Aₖ (diagonal, determinant one) and an orientation
Dₖ (orthogonal). The three letters of a model's name say, in that order,
whether each is Equal across components, Variable, or the Identity (Celeux
and Govaert, 1995; Fraley and Raftery, 2002).

Every M-step here minimises, over the model's covariances,

    f(Σ) = Σₖ [ nₖ log|Σₖ| + tr(Wₖ Σₖ⁻¹) ],

with Wₖ a component's scatter about its new mean and nₖ its count (or, for
MAP-EM, the prior's shifted scatter and count, which have the same form).
Where no closed form exists (VEI, VEE, VEV, EVE, VVE) the minimisation
alternates exact minimisations over blocks of parameters, or for a common
orientation the majorise–minimise steps of Browne and McNicholas (2014),
starting from the previous covariances: each step lowers f, so EM with
these M-steps never lowers the likelihood.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ALIASES", "MODELS", "check_form", "constrained_covariances", "layout", "n_covariance_parameters"]

MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
"""mclust's covariance models, in mclust's order."""

ALIASES = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
"""scikit-learn's covariance types and the mclust models they are."""

ITERATIVE = ("VEI", "VEE", "EVE", "VVE", "VEV")
"""The models whose M-step has no closed form."""

MAX_STEPS = 100
"""Most alternating (or majorise–minimise) steps one M-step of an iterative model takes."""


def layout(model: str) -> str:
    """How a model's precision factors are stored: "spherical" (K,), "diag" (K, D) or "full" (K, D, D).

    Example:
      >>> from mixtures._src.families.gaussian.models import layout
      >>> layout("EII"), layout("VEI"), layout("EVE")
      ('spherical', 'diag', 'full')
    """
    if model == "identity" or model[1:] == "II":
        return "spherical"
    return "diag" if model[2] == "I" else "full"


def n_covariance_parameters(model: str, k: int, d: int) -> int:
    """Free parameters of the K covariances (mclust's count: volume, then shape, then orientation).

    Example:
      >>> from mixtures._src.families.gaussian.models import n_covariance_parameters
      >>> n_covariance_parameters("VEV", 3, 2)  # 3 volumes, 1 shape, 3 angles
      7
    """
    if model == "identity":
        return 0
    volume = {"E": 1, "V": k}[model[0]]
    shape = {"I": 0, "E": d - 1, "V": k * (d - 1)}[model[1]]
    orientation = {"I": 0, "E": d * (d - 1) // 2, "V": k * d * (d - 1) // 2}[model[2]]
    return volume + shape + orientation


def check_form(model: str, covariances, rtol: float, name: str = "`covariances`") -> None:
    """Raises ``ValueError`` unless the covariances (positive definite, in the layout's shape) have ``model``'s form.

    Volumes |Σₖ|^(1/D), shapes (the eigenvalues over the volume, sorted, or
    per axis for the diagonal models; for EEE and VEE the matrices Σₖ / λₖ)
    and orientations (whether the covariances commute) are compared to
    ``rtol``.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.gaussian.models import check_form
      >>> check_form("EVI", np.array([[1.0, 4.0], [2.0, 2.0]]), 1e-6)
      >>> check_form("EVI", np.array([[1.0, 4.0], [1.0, 1.0]]), 1e-6)
      Traceback (most recent call last):
      ...
      ValueError: `covariances` do not have model EVI's form: the volumes |Σₖ|^(1/D) differ (2, 1); EVI asks that they be equal.
    """
    cov = np.asarray(covariances, np.float64)
    if cov.ndim < 3:
        # On the axes: the shape is compared axis by axis (the orientation is fixed).
        d = cov.shape[-1] if cov.ndim == 2 else 1
        values = cov if cov.ndim == 2 else np.repeat(cov[:, None], d, axis=1)
        commute = True
    else:
        values = np.linalg.eigvalsh(cov)[:, ::-1]
        scale = np.max(np.abs(cov))
        products = np.einsum("kij,ljm->klim", cov, cov)
        commute = np.allclose(products, np.swapaxes(products, 0, 1), rtol=0, atol=rtol * scale**2)
    volume = np.exp(np.mean(np.log(values), axis=1))
    shape = values / volume[:, None]
    if cov.ndim == 3 and model[1:] == "EE":  # one shape on one set of axes: equal Σₖ / λₖ
        normalised = cov / volume[:, None, None]
        same_shape = np.allclose(normalised, normalised[0], rtol=0, atol=rtol * np.max(np.abs(normalised)))
    else:
        same_shape = np.allclose(shape, shape[0], rtol=rtol, atol=0)

    def refuse(what):
        raise ValueError(f"{name} do not have model {model}'s form: {what}.")

    if model[0] == "E" and not np.allclose(volume, volume[0], rtol=rtol, atol=0):
        refuse(f"the volumes |Σₖ|^(1/D) differ ({', '.join(f'{v:.6g}' for v in volume)}); {model} asks that they be equal")
    if model[1] == "E" and not same_shape:
        refuse(f"the shapes (eigenvalues over the volume) differ between components; {model} asks that they be equal")
    if model[1] == "I" and not np.allclose(shape, 1.0, rtol=rtol, atol=0):
        refuse(f"a covariance is not a multiple of the identity; {model} asks that each be")
    if model[2] == "E" and not commute:
        refuse(f"the covariances do not share their axes (they do not commute); {model} asks for one orientation")


def _geometric_mean(v, axis=-1):
    return jnp.exp(jnp.mean(jnp.log(v), axis=axis))


def _normalised(v):
    """v scaled to geometric mean one (a shape of determinant one)."""
    return v / _geometric_mean(v)[..., None]


def _log_det(s):
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(s), axis1=-2, axis2=-1)), axis=-1)


def _polar(z):
    """The orthogonal factor P Qᵀ of z = P S Qᵀ: the orthogonal D maximising tr(Dᵀ z)."""
    p, _, qt = jnp.linalg.svd(z)
    return p @ qt


def _iterate(step, objective, start, size):
    """Applies ``step`` at least once and until f stops falling by more than √ε relative, or MAX_STEPS times.

    Relative to |f| + ``size``: at the minimum Σₖ tr(Wₖ Σₖ⁻¹) = D Σₖ nₖ, the
    size given, so the rule does not tighten where the log-determinants
    happen to cancel it and f is near zero.
    """
    f0 = objective(start)
    tol = jnp.sqrt(jnp.finfo(f0.dtype).eps)

    def cond(carry):
        i, _, f, f_before = carry
        return (i < MAX_STEPS) & ((i == 0) | (f_before - f > tol * (jnp.abs(f) + size)))

    def body(carry):
        i, state, f, _ = carry
        new = step(state)
        f_new = objective(new)
        # A step that rounding made worse is not taken (it ends the loop).
        better = f_new <= f
        state = jax.tree.map(lambda a, b: jnp.where(better, a, b), new, state)
        return i + 1, state, jnp.where(better, f_new, f), f

    return jax.lax.while_loop(cond, body, (jnp.asarray(0), start, f0, f0))[1]


def constrained_covariances(model: str, scatter, counts, previous, on):
    """The covariances minimising Σₖ [nₖ log|Σₖ| + tr(Wₖ Σₖ⁻¹)] under ``model``'s constraints.

    Args:
      model: one of :data:`MODELS` (the Gaussian family itself fits VII,
        VVI, EEE and VVV in each component's whitened frame instead).
      scatter: the Wₖ, (K, D, D) for the "full" layout, their diagonals
        (K, D) for "diag" and "spherical".
      counts: (K,) the nₖ.
      previous: the previous covariances in the layout's shape ((K, D, D),
        (K, D) or (K,)), where the iterative M-steps start.
      on: (K,) bool, the components taking part; the others get finite
        covariances of the model's form that no likelihood depends on.

    Returns:
      The covariances in the layout's shape.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.families.gaussian.models import constrained_covariances
      >>> w = np.array([[4.0, 1.0], [1.0, 16.0]])  # EVI: Aₖ = (2, ½), (¼, 4); λ = (2 + 4) / 2
      >>> constrained_covariances("EVI", w, np.array([1.0, 1.0]), np.ones((2, 2)), np.array([True, True])).tolist()
      [[6.0, 1.5], [0.75, 12.0]]
    """
    n_on = jnp.where(on, counts, 0.0)
    total = jnp.sum(n_on)
    safe = jnp.where(on, counts, 1.0)
    w = jnp.where(on.reshape((-1,) + (1,) * (scatter.ndim - 1)), scatter, 0.0)
    kind = layout(model)
    if kind == "spherical":
        if model == "EII":
            return jnp.broadcast_to(jnp.sum(w) / (w.shape[-1] * total), counts.shape)
        return jnp.where(on, jnp.mean(w, axis=-1) / safe, 1.0)  # VII
    if kind == "diag":
        return _diagonal(model, w, n_on, total, safe, previous, on)
    return _full(model, w, n_on, total, safe, previous, on)


def _diagonal(model, w, n_on, total, safe, previous, on):
    d = w.shape[-1]
    column = on[:, None]
    if model == "EEI":
        return jnp.broadcast_to(jnp.sum(w, axis=0) / total, w.shape)
    if model == "VVI":
        return jnp.where(column, w / safe[:, None], 1.0)
    if model == "EVI":
        size = jnp.where(on, _geometric_mean(jnp.where(column, w, 1.0)), 0.0)  # |diag Wₖ|^(1/D)
        shape = jnp.where(column, w / jnp.where(on, size, 1.0)[:, None], 1.0)
        return shape * (jnp.sum(size) / total)
    # VEI: λₖ B, alternating B = normalised Σₖ Wₖ / λₖ and λₖ = tr(Wₖ B⁻¹) / (D nₖ).
    volume = jnp.where(on, _geometric_mean(previous), 1.0)

    def objective(volume):
        shape = _normalised(jnp.sum(w / volume[:, None], axis=0))
        return jnp.sum(d * n_on * jnp.log(volume) + jnp.sum(w / shape[None, :], axis=-1) / volume)

    def step(volume):
        shape = _normalised(jnp.sum(w / volume[:, None], axis=0))
        return jnp.where(on, jnp.sum(w / shape[None, :], axis=-1) / (d * safe), volume)

    volume = _iterate(step, objective, volume, d * total)
    shape = _normalised(jnp.sum(w / volume[:, None], axis=0))
    return volume[:, None] * shape[None, :]


def _full(model, w, n_on, total, safe, previous, on):
    k, d, _ = w.shape
    eye = jnp.eye(d, dtype=w.dtype)
    matrix = on[:, None, None]
    if model == "EEE":
        return jnp.broadcast_to(jnp.sum(w, axis=0) / total, w.shape)
    if model == "VVV":
        return jnp.where(matrix, w / safe[:, None, None], eye[None])
    if model == "EVV":
        size = jnp.where(on, jnp.exp(_log_det(jnp.where(matrix, w, eye[None])) / d), 0.0)  # |Wₖ|^(1/D)
        shape = jnp.where(matrix, w / jnp.where(on, size, 1.0)[:, None, None], eye[None])
        return shape * (jnp.sum(size) / total)
    if model in ("EEV", "VEV"):
        values, vectors = jnp.linalg.eigh(jnp.where(matrix, w, eye[None]))
        values, vectors = values[:, ::-1], vectors[:, :, ::-1]  # largest first, as the shared shape
        values = jnp.where(on[:, None], values, 0.0)
        if model == "EEV":
            shape = jnp.broadcast_to(jnp.sum(values, axis=0) / total, values.shape)
        else:
            shape = _vev_shape(values, n_on, safe, previous, on)
        return jnp.einsum("kij,kj,klj->kil", vectors, shape, vectors)
    if model == "VEE":
        return _vee(w, n_on, safe, previous, on)
    return _common_orientation(model, w, n_on, total, safe, previous, on)


def _vev_shape(values, n_on, safe, previous, on):
    """VEV's λₖ A (K, D): alternating A = normalised Σₖ ωₖ / λₖ and λₖ = Σⱼ ωₖⱼ / Aⱼ / (D nₖ)."""
    d = values.shape[-1]
    volume = jnp.where(on, jnp.exp(_log_det(previous) / d), 1.0)

    def shape_of(volume):
        return _normalised(jnp.sum(values / volume[:, None], axis=0))

    def objective(volume):
        return jnp.sum(d * n_on * jnp.log(volume) + jnp.sum(values / shape_of(volume)[None, :], axis=-1) / volume)

    def step(volume):
        return jnp.where(on, jnp.sum(values / shape_of(volume)[None, :], axis=-1) / (d * safe), volume)

    volume = _iterate(step, objective, volume, d * jnp.sum(n_on))
    return volume[:, None] * shape_of(volume)[None, :]


def _vee(w, n_on, safe, previous, on):
    """VEE's λₖ C, |C| = 1: alternating C = normalised Σₖ Wₖ / λₖ and λₖ = tr(Wₖ C⁻¹) / (D nₖ)."""
    d = w.shape[-1]
    volume = jnp.where(on, jnp.exp(_log_det(previous) / d), 1.0)

    def shared(volume):
        c = jnp.sum(w / volume[:, None, None], axis=0)
        c = c / jnp.exp(_log_det(c) / d)
        return c, jnp.einsum("kij,ji->k", w, jnp.linalg.inv(c))  # C, tr(Wₖ C⁻¹)

    def objective(volume):
        _, traces = shared(volume)
        return jnp.sum(d * n_on * jnp.log(volume) + traces / volume)

    def step(volume):
        _, traces = shared(volume)
        return jnp.where(on, traces / (d * safe), volume)

    volume = _iterate(step, objective, volume, d * jnp.sum(n_on))
    c, _ = shared(volume)
    return volume[:, None, None] * c[None]


def _common_orientation(model, w, n_on, total, safe, previous, on):
    """EVE (λ D Aₖ Dᵀ) and VVE (D diag(cₖ) Dᵀ): the diagonal parts given D in closed form, D by majorise–minimise.

    Given the diagonal parts, D minimises Σₖ tr(Dᵀ Wₖ D Mₖ) (Mₖ the inverse
    diagonal parts) over orthogonal matrices; with αₖ the largest
    eigenvalue of Wₖ and mₖ the largest entry of Mₖ, each of
    D ← polar(Σₖ (αₖ I − Wₖ) D Mₖ) and D ← polar(Σₖ Wₖ D (mₖ I − Mₖ))
    minimises a majoriser of it that touches it at the current D, so
    neither raises it (Browne and McNicholas, 2014).
    """
    k, d, _ = w.shape
    largest = jnp.linalg.eigvalsh(w)[:, -1]
    pooled = jnp.sum(jnp.where(on[:, None, None], previous, 0.0), axis=0)
    _, start = jnp.linalg.eigh(pooled)  # the previous covariances' common axes

    def diagonal_parts(orientation):
        b = jnp.einsum("ji,kjl,li->ki", orientation, w, orientation)  # diag(Dᵀ Wₖ D)
        b = jnp.where(on[:, None], b, 1.0)
        if model == "VVE":
            return b / safe[:, None]
        size = jnp.where(on, _geometric_mean(b), 0.0)
        return b / jnp.where(on, size, 1.0)[:, None] * (jnp.sum(size) / total)

    def objective(orientation):
        parts = diagonal_parts(orientation)
        b = jnp.einsum("ji,kjl,li->ki", orientation, w, orientation)
        return jnp.sum(jnp.where(on, n_on * jnp.sum(jnp.log(parts), axis=-1) + jnp.sum(b / parts, axis=-1), 0.0))

    def step(orientation):
        inverse = jnp.where(on[:, None], 1.0 / diagonal_parts(orientation), 0.0)  # Mₖ
        z = jnp.einsum("k,ij,jl,kl->il", largest, eye, orientation, inverse) - jnp.einsum(
            "kij,jl,kl->il", w, orientation, inverse
        )
        orientation = _polar(z)
        inverse = jnp.where(on[:, None], 1.0 / diagonal_parts(orientation), 0.0)
        top = jnp.max(inverse, axis=-1)
        z = jnp.einsum("kij,jl,kl->il", w, orientation, top[:, None] - inverse)
        return _polar(z)

    eye = jnp.eye(d, dtype=w.dtype)
    orientation = _iterate(step, objective, start, d * total)
    parts = diagonal_parts(orientation)
    return jnp.einsum("ij,kj,lj->kil", orientation, parts, orientation)
