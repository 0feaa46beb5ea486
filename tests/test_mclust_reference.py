"""R's mclust as an oracle: the reference file is well formed, and mixtures agrees with it.

``tests/mclust/reference.json`` holds mclust's EM fits (``me``) of its 14 covariance
models from mclust's own starting responsibilities, on Old Faithful, iris and the first
5 columns of wine, for K = 1..5 (written by ``tests/mclust/make_reference.R``; see
``tests/mclust/README.md``). This module checks that the file is self-consistent (shapes,
BIC = 2 logL - p log n, the parameter counts, each model's constraints on its
covariances, the nested hierarchical starts, Mclust's choice by BIC), and that the four
models mixtures already has, VVV / EEE / VII / VVI = "full" / "tied" / "spherical" /
"diag", fitted in float64 from the same responsibilities without regularisation, reach
mclust's fixed point: log-likelihoods within 1e-10 relative, parameters within 1e-5.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import numpy as np
import pytest

import mixtures as mx

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "mclust" / "reference.json"
MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
# mclust's models that mixtures' Gaussian already has.
EXISTING = {"VVV": "full", "EEE": "tied", "VII": "spherical", "VVI": "diag"}
DATASETS = ("old_faithful", "iris", "wine5")
KS = (1, 2, 3, 4, 5)
# Measured (mclust stopping at a relative log-likelihood change of 1e-15, mixtures at a
# change of 1e-14 in the mean log-likelihood): log-likelihoods within 3e-14 relative,
# parameters within 9e-7 of the largest entry of each array (Old Faithful, VVV, K = 5).
LOGLIK_RTOL = 1e-10
PARAM_RTOL = 1e-5


@functools.cache
def reference() -> dict:
    with open(REFERENCE) as f:
        return json.load(f)


@functools.cache
def data(name: str) -> np.ndarray:
    path = ROOT / reference()["datasets"][name]["path"]
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)


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


def m_step(x: np.ndarray, z: np.ndarray, covariance: str):
    """The maximum-likelihood weights, means and covariances (scikit-learn's layouts) for responsibilities z."""
    n, d = x.shape
    counts = z.sum(0)
    means = z.T @ x / counts[:, None]
    centred = x[None] - means[:, None]  # (K, N, d)
    scatter = np.einsum("nk,kni,knj->kij", z, centred, centred) / counts[:, None, None]
    if covariance == "full":
        return counts / n, means, scatter
    if covariance == "tied":
        return counts / n, means, np.einsum("k,kij->ij", counts, scatter) / n
    variances = np.diagonal(scatter, axis1=1, axis2=2)
    if covariance == "diag":
        return counts / n, means, variances
    return counts / n, means, variances.mean(1)  # spherical: tr(W_k) / (d n_k), mclust's VII


def full_covariances(covariance: str, covariances: np.ndarray, k: int, d: int) -> np.ndarray:
    if covariance in ("full", "tied"):
        return np.broadcast_to(covariances, (k, d, d))  # "tied" stores K copies
    if covariance == "diag":
        return covariances[:, :, None] * np.eye(d)
    return covariances[:, None, None] * np.eye(d)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("model", sorted(EXISTING))
@pytest.mark.parametrize("name", DATASETS)
def test_mixtures_reaches_mclust_fixed_point(name, model, k):
    ref = fit_of(name, model, k)
    if ref["loglik"] is None:
        pytest.skip(f"mclust refused this fit: {ref['warning']}")
    x = data(name)
    n, d = x.shape
    z = np.array(reference()["datasets"][name]["z"][str(k)], dtype=np.float64)
    covariance = EXISTING[model]
    family = mx.Gaussian(covariance, reg_covar=0.0)  # mclust has no regularisation
    weights, means, covariances = m_step(x, z, covariance)
    start = mx.Mixture(weights, family.make_params(means, covariances), family)
    result = mx.fit(x, family, k, key=None, init=start, tol=1e-14, max_iter=20_000)

    assert bool(result.converged) and int(result.n_collapsed) == 0
    loglik = float(result.log_likelihood) * n  # mixtures reports the mean per row
    assert loglik == pytest.approx(ref["loglik"], rel=LOGLIK_RTOL)
    mixture = result.mixture
    # The same parameter count; mixtures' BIC is minus mclust's (lower is better).
    assert mixture.n_parameters == ref["npar"]
    assert -2 * loglik + mixture.n_parameters * math.log(n) == pytest.approx(-ref["bic"], rel=LOGLIK_RTOL)

    def close(ours, theirs, what):
        theirs = np.asarray(theirs)
        np.testing.assert_allclose(
            ours, theirs, rtol=PARAM_RTOL, atol=PARAM_RTOL * np.abs(theirs).max(), err_msg=f"{what} of {model} K={k}"
        )

    close(np.asarray(mixture.weights), ref["pro"], "weights")
    close(np.asarray(mixture.params.means), ref["mean"], "means")
    ours = full_covariances(covariance, np.asarray(mixture.params.covariances), k, d)
    close(ours, ref["sigma"], "covariances")
