"""R's mclust as an oracle: the reference file is well formed, and mixtures agrees with it.

``tests/mclust/reference.json`` holds mclust's EM fits (``me``) of its 14 covariance
models from mclust's own starting responsibilities, on Old Faithful, iris and the first
5 columns of wine, for K = 1..5 (written by ``tests/mclust/make_reference.R``; see
``tests/mclust/README.md``). This module checks that the file is self-consistent (shapes,
BIC = 2 logL - p log n, the parameter counts, each model's constraints on its
covariances, the nested hierarchical starts, Mclust's choice by BIC), and then mixtures
against it, for every model, data set and K, in float64 without regularisation:

- from the same start (the M-step of mclust's z), mixtures reaches mclust's fixed point:
  log-likelihoods within 1e-11 relative, parameters within 1e-5, the same parameter
  count and BIC; except VVE, whose M-step in mclust is inexact: there mixtures' fixed
  point is checked to be a stationary point of the log-likelihood (an autodiff gradient
  of a direct implementation) and mclust's reported parameters not to be one;
- from its own default start (kmeans++, 10 restarts, all K of a model in one
  ``mx.select``), mixtures reaches at least mclust's log-likelihood, except on nine
  listed (data set, model, K), where it stays short.
"""


from __future__ import annotations

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from tests.helpers import mclust_data, mclust_reference
from mixtures import engine
from mixtures._src.families.gaussian import models
from mixtures._src.families.gaussian.models import constrained_covariances

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
# mclust's models that mixtures' Gaussian already has.
EXISTING = {"VVV": "full", "EEE": "tied", "VII": "spherical", "VVI": "diag"}
DATASETS = ("old_faithful", "iris", "wine5")
KS = (1, 2, 3, 4, 5)
# Measured (mclust stopping at a relative log-likelihood change of 1e-15, mixtures at a
# change of 1e-14 in the mean log-likelihood), over the 13 models other than VVE: the
# log-likelihoods within 1.6e-13 relative (EVV, iris, K = 4), the parameters within 2.4e-6
# of the largest entry of each array (the weights of EVE, iris, K = 5; covariances 8.6e-7,
# means 1.7e-7).
LOGLIK_RTOL = 1e-11
PARAM_RTOL = 1e-5
SAME_START_TOL = 1e-14  # on the mean log-likelihood per row
SAME_START_MAX_ITER = 20_000


reference, data = mclust_reference, mclust_data


def fits(name: str):
    return reference()["datasets"][name]["fits"]


def fit_of(name: str, model: str, k: int) -> dict:
    (fit,) = [f for f in fits(name) if f["model"] == model and f["K"] == k]
    return fit


def n_parameters(model: str, k: int, d: int) -> int:
    """mclust's nMclustParams, from the model's name: weights, means, then volume, shape and orientation."""
    volume = {"E": 1, "V": k}[model[0]]
    shape = {"I": 0, "E": d - 1, "V": k * (d - 1)}[model[1]]
    orientation = {"I": 0, "E": d * (d - 1) // 2, "V": k * d * (d - 1) // 2}[model[2]]
    return (k - 1) + k * d + volume + shape + orientation


# -- the file ----------------------------------------------------------------------------


def test_provenance_and_control():
    r = reference()
    p = r["provenance"]
    assert p["mclust_version"] and p["R_version"].startswith("R version")
    assert p["command"] == "Rscript tests/mclust/make_reference.R > tests/mclust/reference.json"
    assert (p["hc_model"], p["hc_use"]) == ("VVV", "SVD")
    assert r["control"]["tol"][0] == 1e-15 and r["default_control"]["tol"][0] == 1e-5
    assert tuple(r["models"]) == MODELS and tuple(r["Ks"]) == KS
    assert tuple(r["datasets"]) == DATASETS


def test_data_files_are_the_published_data_sets():
    sklearn = pytest.importorskip("sklearn.datasets")
    np.testing.assert_array_equal(data("old_faithful"), mx.datasets.load_old_faithful())
    np.testing.assert_array_equal(data("iris"), sklearn.load_iris().data)
    np.testing.assert_array_equal(data("wine5"), sklearn.load_wine().data[:, :5])
    for name in DATASETS:
        ds = reference()["datasets"][name]
        assert data(name).shape == (ds["n"], ds["d"])


@pytest.mark.parametrize("name", DATASETS)
def test_starts_are_nested_one_hot_partitions(name):
    ds = reference()["datasets"][name]
    labels = {}
    for k in KS:
        z = np.array(ds["z"][str(k)])
        assert z.shape == (ds["n"], k)
        assert set(np.unique(z)) <= {0, 1} and np.all(z.sum(1) == 1) and np.all(z.sum(0) > 0)
        labels[k] = z.argmax(1)
    # A hierarchical clustering: each class at K + 1 lies inside one class at K.
    for k in KS[:-1]:
        for c in range(k + 1):
            assert len(np.unique(labels[k][labels[k + 1] == c])) == 1


def _check_constraints(model: str, sigma: np.ndarray) -> None:
    """sigma (K, d, d) has model's form λₖ Dₖ Aₖ Dₖᵀ: E = equal across k, I = identity (shape) / axes (orientation)."""
    k, d, _ = sigma.shape
    scale = np.abs(sigma).max()
    np.testing.assert_allclose(sigma, np.swapaxes(sigma, 1, 2), atol=1e-13 * scale)
    eig = np.linalg.eigvalsh(sigma)
    assert np.all(eig > 0)
    volume = np.exp(np.log(eig).mean(1))  # det^(1/d)
    shape = eig / volume[:, None]  # sorted, determinant one
    if model[0] == "E":
        np.testing.assert_allclose(volume, volume[0], rtol=1e-9)
    if model[1] == "E":
        np.testing.assert_allclose(shape, np.broadcast_to(shape[0], shape.shape), rtol=1e-7)
    if model[1] == "I":
        np.testing.assert_allclose(shape, 1.0, rtol=1e-12)
    if model[2] == "I":
        off = sigma * (1 - np.eye(d))
        assert np.all(off == 0)
    if model[2] == "E":  # a common orientation: the covariances commute
        for i in range(k):
            np.testing.assert_allclose(
                sigma[i] @ sigma[0], sigma[0] @ sigma[i], atol=1e-7 * scale**2
            )


@pytest.mark.parametrize("name", DATASETS)
def test_fits_are_self_consistent(name):
    ds = reference()["datasets"][name]
    n, d = ds["n"], ds["d"]
    assert [(f["model"], f["K"]) for f in ds["fits"]] == [(m, k) for k in KS for m in MODELS]
    for f in ds["fits"]:
        model, k = f["model"], f["K"]
        where = f"{name} {model} K={k}"
        assert (f["n"], f["d"]) == (n, d), where
        assert f["npar"] == n_parameters(model, k, d), where
        if f["loglik"] is None:  # a fit mclust refused: says why, carries no parameters
            assert f["bic"] is None and f["return_code"] < 0 and f["warning"], where
            assert "sigma" not in f, where
            continue
        assert f["return_code"] == 0 and f["warning"] is None, where
        assert f["bic"] == pytest.approx(2 * f["loglik"] - f["npar"] * math.log(n), rel=1e-13), where
        # At the fixed point: mclust stopped by the tight tolerance, not by its cap.
        assert f["last_relative_change"] < 1e-15 and f["iterations"] < reference()["control"]["itmax"][0], where
        pro, mean, sigma = np.array(f["pro"]), np.array(f["mean"]), np.array(f["sigma"])
        assert pro.shape == (k,) and mean.shape == (k, d) and sigma.shape == (k, d, d), where
        assert pro.sum() == pytest.approx(1.0, abs=1e-13) and np.all(pro > 0), where
        _check_constraints(model, sigma)
        # The eigen-decomposition mclust reports: sigma_k = scale_k O_k diag(shape_k) O_kᵀ.
        if "scale" in f:
            scale = np.broadcast_to(np.array(f["scale"]), (k,))
            shape = np.broadcast_to(np.array(f.get("shape", np.ones(d))), (k, d))
            np.testing.assert_allclose(np.prod(shape, axis=1), 1.0, rtol=1e-10)
            orientation = np.broadcast_to(np.array(f.get("orientation", np.eye(d))), (k, d, d))
            rebuilt = np.einsum("k,kij,kj,klj->kil", scale, orientation, shape, orientation)
            np.testing.assert_allclose(rebuilt, sigma, atol=1e-13 * np.abs(sigma).max(), err_msg=where)
        # The tight fit ends at a log-likelihood at least that of mclust's default stopping
        # rule, except for VVE: its inexact inner M-step makes EM non-monotone, and the
        # default rule can stop above the fixed point (README.md).
        default = f["default_control"]
        if default["loglik"] is not None and model != "VVE":
            assert f["loglik"] >= default["loglik"] - 1e-9 * abs(default["loglik"]), where


@pytest.mark.parametrize("name", DATASETS)
def test_mclust_choice_by_bic(name):
    ds = reference()["datasets"][name]
    n, d = ds["n"], ds["d"]
    for model, m in ds["mclust"].items():
        table = np.array([np.nan if b is None else b for b in m["bic_by_K"]])
        assert m["G"] == int(np.nanargmax(table)) + 1, model
        assert m["bic"] == pytest.approx(table[m["G"] - 1], rel=1e-13), model
        assert m["bic"] == pytest.approx(2 * m["loglik"] - n_parameters(model, m["G"], d) * math.log(n), rel=1e-13)
        # Mclust starts from the same z with the default control: its BIC table is me()'s
        # (for K = 1 Mclust uses the closed form mvn(), which the iterative M-steps of EVE
        # and VVE reach to 1e-7).
        for k in KS:
            mine = fit_of(name, model, k)["default_control"]["bic"]
            if mine is None or np.isnan(table[k - 1]):
                assert mine is None and np.isnan(table[k - 1]), (model, k)
            else:
                assert mine == pytest.approx(table[k - 1], rel=1e-12 if k > 1 else 1e-7), (model, k)


# -- mixtures from the same start ----------------------------------------------------------
#
# For each data set and model, the five fits K = 1..5 run as one compiled program: each
# start is padded to K_MAX components with switched-off copies of its first (weight zero:
# no responsibility, no update, no parameters counted), and the five starts go through
# mixtures.engine.fit_loop under jax.vmap. One program per (data set, model) rather than
# per (data set, model, K): 42 compilations instead of 210.

K_MAX = max(KS)
CLOSED_FORM = ("EII", "VII", "EEI", "EVI", "VVI", "EEE", "EEV", "EVV", "VVV")


def class_scatter(x: np.ndarray, z: np.ndarray):
    """The counts nₖ (K,), means (K, d) and scatter matrices Wₖ about them (K, d, d) of responsibilities z."""
    counts = z.sum(0)
    means = z.T @ x / counts[:, None]
    centred = x[None] - means[:, None]  # (K, N, d)
    return counts, means, np.einsum("nk,kni,knj->kij", z, centred, centred)


def closed_form_covariances(model: str, w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The M-step's covariances (K, d, d) of the models with a closed form, in NumPy (Celeux and Govaert, 1995)."""
    k, d, _ = w.shape
    n = counts.sum()
    eye = np.eye(d)
    diag = np.diagonal(w, axis1=1, axis2=2)
    if model == "EII":
        return np.broadcast_to(np.trace(w.sum(0)) / (n * d) * eye, (k, d, d))
    if model == "VII":
        return (np.trace(w, axis1=1, axis2=2) / (d * counts))[:, None, None] * eye
    if model == "EEI":
        return np.broadcast_to(np.diag(diag.sum(0) / n), (k, d, d))
    if model == "VVI":
        return (diag / counts[:, None])[:, :, None] * eye
    if model == "EVI":  # λ Aₖ: Aₖ = diag Wₖ / |diag Wₖ|^(1/d), λ = Σₖ |diag Wₖ|^(1/d) / n
        size = np.exp(np.log(diag).mean(1))
        return (diag / size[:, None] * (size.sum() / n))[:, :, None] * eye
    if model == "EEE":
        return np.broadcast_to(w.sum(0) / n, (k, d, d))
    if model == "VVV":
        return w / counts[:, None, None]
    if model == "EVV":  # λ Cₖ: Cₖ = Wₖ / |Wₖ|^(1/d), λ = Σₖ |Wₖ|^(1/d) / n
        size = np.exp(np.linalg.slogdet(w)[1] / d)
        return w / size[:, None, None] * (size.sum() / n)
    if model == "EEV":  # Wₖ = Lₖ Ωₖ Lₖᵀ; Σₖ = Lₖ (Σⱼ Ωⱼ / n) Lₖᵀ, eigenvalues paired in order
        values, vectors = np.linalg.eigh(w)
        return np.einsum("kij,j,klj->kil", vectors, values.sum(0) / n, vectors)
    raise ValueError(model)


@functools.partial(jax.jit, static_argnames="model")
def _iterative_covariances(model, w, counts, previous):
    return constrained_covariances(model, w, counts, previous, counts > 0)


def in_layout(layout: str, sigma: np.ndarray) -> np.ndarray:
    if layout == "full":
        return sigma
    variances = np.diagonal(sigma, axis1=1, axis2=2)
    return variances if layout == "diag" else variances[:, 0]


def start_covariances(model: str, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """mclust's start: the M-step of z, (K, d, d); padded to K_MAX for the iterative models' one compilation.

    The closed forms are computed here in NumPy; the iterative M-steps (VEI, VEE, EVE, VVE,
    VEV) are mixtures' own (``constrained_covariances``, from the classes' own covariances),
    which is enough: what is compared with mclust is the fixed point EM reaches from there.
    """
    counts, _, w = class_scatter(x, z)
    if model in CLOSED_FORM:
        return closed_form_covariances(model, w, counts)
    k, d, _ = w.shape
    pad = K_MAX - k
    counts_p = np.concatenate([counts, np.zeros(pad)])
    w_p = np.concatenate([w, np.zeros((pad, d, d))])
    previous = np.concatenate([w / counts[:, None, None], np.broadcast_to(np.eye(d), (pad, d, d))])
    layout = models.layout(model)
    if layout == "diag":
        w_p, previous = (np.diagonal(a, axis1=1, axis2=2) for a in (w_p, previous))
    cov = np.asarray(_iterative_covariances(model, w_p, counts_p, previous))[:k]
    return cov[:, :, None] * np.eye(d) if layout == "diag" else cov


def padded(weights, means, sigma, family) -> mx.Mixture:
    """A mixture padded to K_MAX components by switched-off copies of the first (one compilation for every K)."""
    pad = K_MAX - len(weights)
    return mx.Mixture(
        np.concatenate([weights, np.zeros(pad)]),
        family.make_params(np.concatenate([means, np.repeat(means[:1], pad, axis=0)]),
                           np.concatenate([sigma, np.repeat(sigma[:1], pad, axis=0)])),
        family,
    )


def padded_start(name: str, model: str, k: int) -> mx.Mixture:
    """mclust's start for K = k, padded to K_MAX components by switched-off copies of the first."""
    x = data(name)
    n, d = x.shape
    z = np.array(reference()["datasets"][name]["z"][str(k)], dtype=np.float64)
    counts, means, _ = class_scatter(x, z)
    family = mx.Gaussian(model, reg_covar=0.0)  # mclust has no regularisation
    return padded(counts / n, means, in_layout(family.layout, start_covariances(model, x, z)), family)


@functools.partial(jax.jit, static_argnames="options")
def _fit_from(starts, x, options):
    return jax.vmap(lambda start: engine.fit_loop(start, engine.Rows(x), SAME_START_TOL, options))(starts)


def full_covariances(params, layout: str, d: int) -> np.ndarray:
    cov = np.asarray(params.covariances)
    if layout == "diag":
        return cov[:, :, None] * np.eye(d)
    if layout == "spherical":
        return cov[:, None, None] * np.eye(d)
    return cov


@functools.cache
def same_start(name: str, model: str) -> dict:
    """mixtures' float64 fits of model to data set name from mclust's starts, K -> a dict of host values."""
    x = data(name)
    n, d = x.shape
    starts = [padded_start(name, model, k) for k in KS]
    family = starts[0].family
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *starts)
    options = engine.EMOptions(chunk_size=n, max_iter=SAME_START_MAX_ITER)
    result = jax.device_get(_fit_from(stacked, jnp.asarray(x), options))
    fits = {}
    for i, k in enumerate(KS):
        params = jax.tree.map(lambda a: jnp.asarray(a[i, :k]), result.mixture.params)
        mixture = mx.Mixture(jnp.asarray(result.mixture.weights[i, :k]), params, family)
        fits[k] = {
            "mixture": mixture,
            "loglik": float(result.log_likelihood[i]) * n,  # mixtures reports the mean per row
            "converged": bool(result.converged[i]),
            "n_iter": int(result.n_iter[i]),
            "n_collapsed": int(result.n_collapsed[i]),
            "weights": np.asarray(mixture.weights),
            "means": np.asarray(params.means),
            "sigma": full_covariances(params, family.layout, d),
        }
    return fits


# Measured at 8 s or more in a full run of this file on 2 workers (each case compiles its
# own programs; the machine was shared, load about 5 on 2 cores).
SLOW_FIXED_POINT = {("wine5", "EVE")}
SLOW_DEFAULT_START = {
    ("old_faithful", "EII"), ("old_faithful", "EEI"), ("old_faithful", "VEI"), ("old_faithful", "EVI"),
    ("old_faithful", "VVI"), ("old_faithful", "EEE"), ("old_faithful", "VEE"),
    ("iris", "EEI"), ("iris", "VEI"), ("iris", "VEE"), ("iris", "EVE"), ("iris", "VVE"), ("iris", "EEV"),
    ("wine5", "VEE"), ("wine5", "EVE"), ("wine5", "VVE"), ("wine5", "EEV"), ("wine5", "VEV"), ("wine5", "EVV"),
    ("wine5", "VVV"),
}


def cases(models_, slow):
    return [
        pytest.param(name, model, marks=[pytest.mark.slow] if (name, model) in slow else [])
        for name in DATASETS
        for model in models_
    ]


@pytest.mark.parametrize(("name", "model"), cases([m for m in MODELS if m != "VVE"], SLOW_FIXED_POINT))
def test_mixtures_reaches_mclust_fixed_point(name, model):
    n, d = data(name).shape
    fits = same_start(name, model)
    for k in KS:
        ref, ours = fit_of(name, model, k), fits[k]
        where = f"{name} {model} K={k}"
        if ref["loglik"] is None:  # mclust refused it (a singular covariance)
            continue
        assert ours["converged"] and ours["n_collapsed"] == 0, where
        assert ours["loglik"] == pytest.approx(ref["loglik"], rel=LOGLIK_RTOL), where
        mixture = ours["mixture"]
        # The same parameter count; mixtures' BIC is minus mclust's (lower is better).
        assert mixture.n_parameters == ref["npar"], where
        bic = -2 * ours["loglik"] + mixture.n_parameters * math.log(n)
        assert bic == pytest.approx(-ref["bic"], rel=LOGLIK_RTOL), where
        for mine, theirs in (("weights", "pro"), ("means", "mean"), ("sigma", "sigma")):
            theirs = np.asarray(ref[theirs])
            np.testing.assert_allclose(
                ours[mine], theirs, rtol=PARAM_RTOL, atol=PARAM_RTOL * np.abs(theirs).max(),
                err_msg=f"{mine} of {where}",
            )
        _check_constraints(model, ours["sigma"])


# -- VVE: mclust's M-step is inexact; mixtures' fixed point is a stationary point ----------
#
# mclust 6.0.0's VVE M-step does not reach the minimum over the common orientation (even with
# its inner tolerance tightened to 1e-13, README.md), so its EM stops at parameters where the
# log-likelihood still rises: from the same start mixtures ends higher, by 0.07 (Old Faithful,
# K = 2) to 24 (iris, K = 3), except on iris with K = 5, where it ends 17 lower, at another
# stationary point. Instead of mclust's values, the test checks stationarity, with the
# gradient of a direct implementation of the mixture's log-likelihood, by autodiff.


def common_axes(sigma: np.ndarray):
    """D (d, d) and the diagonal parts c (K, d) of covariances of the form Σₖ = D diag(cₖ) Dᵀ."""
    mix = np.einsum("k,kij->ij", np.linspace(1.0, 2.0, len(sigma)), sigma)  # distinct eigenvalues
    _, orientation = np.linalg.eigh(mix)
    return orientation, np.einsum("ji,kjl,li->ki", orientation, sigma, orientation)


@jax.jit
def log_likelihood_gradient(x, weights, means, orientations, parts):
    """Σₙ log p(xₙ) of a Gaussian mixture and its gradient, at the given parameters.

    The covariances are Σₖ = Dₖ diag(cₖ) Dₖᵀ, ``orientations`` (K, d, d). The unconstrained
    parameters, all zero at the given point: logits added to log πₖ; steps δₖ of the means,
    μₖ + Dₖ (√cₖ ⊙ δₖ) (whitened, so each is dimensionless); one skew-symmetric
    Aₖ = Sₖ − Sₖᵀ per component turning Dₖ into Dₖ (I − Aₖ)⁻¹ (I + Aₖ) (the Cayley
    transform: a chart of the rotations around the identity with expm(2Aₖ)'s tangent, and
    cheaper to compile); and log cₖ. Each gradient entry is a sum of N terms of order one.
    With one orientation shared (VVE), the gradient for its S is the sum over k of the Sₖ's.
    """
    k, d = means.shape
    eye = jnp.broadcast_to(jnp.eye(d, dtype=x.dtype), (k, d, d))

    def log_likelihood(theta):
        logits, steps, skew, log_parts = theta
        a = skew - jnp.swapaxes(skew, -1, -2)
        rotated = jnp.einsum("kij,kjl->kil", orientations, jnp.linalg.solve(eye - a, eye + a))
        mu = means + jnp.einsum("kij,kj->ki", orientations, jnp.sqrt(parts) * steps)
        c = parts * jnp.exp(log_parts)
        y = jnp.einsum("kji,nkj->nki", rotated, x[:, None, :] - mu[None])  # in each component's axes
        mahalanobis = jnp.sum(y**2 / c[None], axis=-1)
        log_density = -0.5 * (d * jnp.log(2 * jnp.pi) + jnp.sum(jnp.log(c), axis=-1)[None] + mahalanobis)
        log_weights = jax.nn.log_softmax(jnp.log(weights) + logits)
        return jnp.sum(jax.nn.logsumexp(log_weights[None] + log_density, axis=1))

    theta = (jnp.zeros(k), jnp.zeros((k, d)), jnp.zeros((k, d, d)), jnp.zeros((k, d)))
    return jax.value_and_grad(log_likelihood)(theta)


def stationarity(x, weights, means, orientations, parts, *, shared: bool):
    """(Σₙ log p(xₙ), the largest gradient entry over N); ``shared``: one orientation for all (VVE)."""
    value, (logits, steps, skew, log_parts) = log_likelihood_gradient(x, weights, means, orientations, parts)
    if shared:
        skew = jnp.sum(skew, axis=0)
    return float(value), max(float(jnp.max(jnp.abs(g))) for g in (logits, steps, skew, log_parts)) / len(x)


# Measured: at mixtures' VVE fixed points the largest gradient entry over N is 1e-14 (K = 1,
# the closed form) to 5.9e-7 (wine5, K = 5); at mclust's reported VVE parameters, for K ≥ 2,
# 0.069 (iris, K = 2) to 4.0 (wine5, K = 3); one mixtures EM step from mclust's parameters
# raises its log-likelihood by 0.075 (Old Faithful, K = 2) to 3.8 (wine5, K = 3).
STATIONARY = 1e-5
NOT_STATIONARY = 1e-2
EM_GAIN = 1e-2
# Where mixtures' VVE fixed point from mclust's start is below mclust's (another stationary point).
VVE_LOWER = {("iris", 5)}


@pytest.mark.slow
@pytest.mark.parametrize("name", DATASETS)
def test_vve_fixed_point_is_stationary_and_mclust_is_not(name):
    x = data(name)
    n, d = x.shape
    fits = same_start(name, "VVE")
    family = mx.Gaussian("VVE", reg_covar=0.0)
    for k in KS:
        ref, ours = fit_of(name, "VVE", k), fits[k]
        where = f"{name} VVE K={k}"
        assert ours["converged"] and ours["n_collapsed"] == 0, where
        # (c) VVE's form (one orientation, free volumes and shapes) and mclust's parameter count.
        _check_constraints("VVE", ours["sigma"])
        assert ours["mixture"].n_parameters == ref["npar"] == n_parameters("VVE", k, d), where
        orientation, parts = common_axes(ours["sigma"])
        rebuilt = np.einsum("ij,kj,lj->kil", orientation, parts, orientation)
        np.testing.assert_allclose(rebuilt, ours["sigma"], atol=1e-12 * np.abs(ours["sigma"]).max(), err_msg=where)
        # (a) mixtures' fixed point is a stationary point of the log-likelihood.
        orientations = np.broadcast_to(orientation, (k, d, d))
        value, gradient = stationarity(x, ours["weights"], ours["means"], orientations, parts, shared=True)
        assert value == pytest.approx(ours["loglik"], rel=1e-12), where
        assert gradient < STATIONARY, where
        if k == 1:  # the closed form: mclust's and mixtures' agree
            assert ours["loglik"] == pytest.approx(ref["loglik"], rel=LOGLIK_RTOL), where
            continue
        if (name, k) in VVE_LOWER:
            assert ours["loglik"] < ref["loglik"], where
        else:
            assert ours["loglik"] > ref["loglik"] + 0.05, where
        # (b) mclust's reported parameters are not: the same gradient is far from zero ...
        theirs = np.array(ref["scale"])[:, None] * np.array(ref["shape"])
        orientations = np.broadcast_to(np.array(ref["orientation"]), (k, d, d))
        pro, mean = np.array(ref["pro"]), np.array(ref["mean"])
        value, gradient = stationarity(x, pro, mean, orientations, theirs, shared=True)
        assert value == pytest.approx(ref["loglik"], rel=1e-12), where
        assert gradient > NOT_STATIONARY, where
        # ... and one EM step of mixtures from them raises the log-likelihood by far more than rounding.
        start = padded(np.array(ref["pro"]), np.array(ref["mean"]), np.array(ref["sigma"]), family)
        after, before = mx.em_step(start, x)
        gain = (float(after.score(x)) - float(before)) * n
        assert float(before) * n == pytest.approx(ref["loglik"], rel=1e-12), where
        assert gain > EM_GAIN, where


@pytest.mark.parametrize("name", DATASETS)
def test_gradient_vanishes_at_vvv_fixed_points(name):
    """The gradient code, cross-checked where mixtures and mclust agree: VVV, one orientation per component."""
    x = data(name)
    for k in KS:
        ours = same_start(name, "VVV")[k]
        values, vectors = np.linalg.eigh(ours["sigma"])
        _, gradient = stationarity(x, ours["weights"], ours["means"], vectors, values, shared=False)
        assert gradient < STATIONARY, f"{name} VVV K={k}"


# -- mixtures from its own default start --------------------------------------------------
#
# mx.select fits K = 1..5 of one model in one compiled batch, N_INIT kmeans++ restarts each
# (key 0), and keeps each K's best restart. Measured: every (data set, model, K) reaches
# mclust's log-likelihood from mclust's start to within 5.7e-10 relative (tol = 1e-10 on the
# mean stops a few 1e-7 short on slowly converging fits: Old Faithful, VEI, K = 4), except
# the nine below, where none of the 10 restarts does (nor of 20: the same nine, EEV K = 4 then
# 4.58 short). wine5 is raw: magnesium (about 100, spread 14) dominates the Euclidean
# distances of kmeans++, where mclust's start is its model-based hierarchical clustering.
N_INIT = 10
DEFAULT_START_TOL = 1e-10
DEFAULT_START_RTOL = 1e-8
# (data set, model, K): mixtures' best log-likelihood minus mclust's, measured.
SHORT_OF_MCLUST = {
    ("old_faithful", "EVE", 5): -0.0471,
    ("wine5", "VEI", 2): -5.27,
    ("wine5", "VVI", 2): -5.94,
    ("wine5", "VEE", 2): -0.380,
    ("wine5", "EEV", 3): -0.0537,
    ("wine5", "EEV", 4): -6.10,
    ("wine5", "VEV", 3): -0.367,
    ("wine5", "EVV", 3): -0.642,
    ("wine5", "EVV", 4): -0.269,
}


@pytest.mark.parametrize(("name", "model"), cases(MODELS, SLOW_DEFAULT_START))
def test_default_start_reaches_mclust_log_likelihood(name, model):
    x = data(name)
    n = len(x)
    selection = mx.select(
        x, mx.Gaussian(model, reg_covar=0.0), KS, key=jax.random.key(0), n_init=N_INIT,
        tol=DEFAULT_START_TOL, max_iter=3000,
    )
    for row in selection.table:
        k = row["n_components"]
        ref = fit_of(name, model, k)
        where = f"{name} {model} K={k}"
        assert row["converged"], where
        if ref["loglik"] is None:  # mclust refused it
            continue
        ours = row["log_likelihood"] * n
        short = SHORT_OF_MCLUST.get((name, model, k))
        if short is None:
            assert ours >= ref["loglik"] - DEFAULT_START_RTOL * abs(ref["loglik"]), where
        else:  # still short (else remove it from the list), and by no more than measured
            assert ref["loglik"] + 2 * short < ours < ref["loglik"], where
