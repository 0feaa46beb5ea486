"""mixtures.sklearn: scikit-learn's estimator checks, and agreement with sklearn.mixture.GaussianMixture.

Compilations dominate the time here, so the tests share shapes: most fits
are on Old Faithful (272 × 2) with two components and max_iter=200 (``tol``
is not part of the compiled program), and the estimator-check instances of
both estimators compile the same programs.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import bernoulli, poisson
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mixtures as mx
import mixtures.sklearn as mxs
from mixtures.sklearn import GaussianMixture, MixtureModel
from tests.helpers import recording_compilations

COVARIANCES = ["full", "tied", "diag", "spherical"]
X = mx.datasets.load_old_faithful()
K = 2
MAX_ITER = 200


def start(covariance: str, seed: int = 3, x=X):
    """Initial weights, means and precisions in scikit-learn's layouts: unequal weights, random rows."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    weights = rng.uniform(0.5, 1.5, size=K)
    weights /= weights.sum()
    means = x[rng.choice(n, size=K, replace=False)]
    cov = np.cov(x.T) / K**2 + 0.01 * np.eye(d)
    precisions = {
        "full": np.stack([np.linalg.inv(cov * (1 + 0.1 * j)) for j in range(K)]),
        "tied": np.linalg.inv(cov),
        "diag": np.stack([1 / (np.diag(cov) * (1 + 0.1 * j)) for j in range(K)]),
        "spherical": np.array([1 / (np.mean(np.diag(cov)) * (1 + 0.1 * j)) for j in range(K)]),
    }[covariance]
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


def both(covariance="full", **kwargs):
    """Our estimator and scikit-learn's with the same arguments."""
    kwargs = {"n_components": K, "covariance_type": covariance, "max_iter": MAX_ITER, **kwargs}
    return GaussianMixture(**kwargs), SkGaussianMixture(**kwargs)


def quiet_fit(estimator, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x, **kwargs)


def assert_same_fit(ours, ref, x, rtol=1e-6):
    """Every fitted attribute and method output of ours equals scikit-learn's."""
    assert ours.n_iter_ == ref.n_iter_
    assert ours.converged_ == ref.converged_
    for name in ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]:
        a, b = getattr(ours, name), getattr(ref, name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)), err_msg=name)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=rtol)
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=rtol)
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=rtol)
    np.testing.assert_allclose(ours.score_samples(x), ref.score_samples(x), rtol=rtol)
    np.testing.assert_allclose(ours.score(x), ref.score(x), rtol=rtol)
    np.testing.assert_allclose(ours.bic(x), ref.bic(x), rtol=rtol)
    np.testing.assert_allclose(ours.aic(x), ref.aic(x), rtol=rtol)
    np.testing.assert_array_equal(ours.predict(x), ref.predict(x))


# -- scikit-learn's own estimator checks ---------------------------------------

# Both instances compile the same programs (the same family, init method,
# restarts and max_iter). The checks fit on 17 different data shapes, one
# compiled program each, so the instances are the quickest to compile:
# diagonal covariances, random_from_data starts, one restart. Restarts and the
# four covariance types are tested against scikit-learn below. No check is
# expected to fail; those scikit-learn skips itself (pandas not installed,
# array API input without SCIPY_ARRAY_API) are reported as skipped.
CHECKED = [
    GaussianMixture(covariance_type="diag", max_iter=5, init_params="random_from_data"),
    MixtureModel(mx.Gaussian("diag"), max_iter=5, init_params="random_from_data"),
    # One of mclust's names (an iterative M-step and its own layout): the checks pass for it too.
    GaussianMixture(covariance_type="VEV", max_iter=5, init_params="random_from_data"),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# -- agreement with scikit-learn from the same start ------------------------------


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_matches_sklearn_from_the_same_start(covariance):
    ours, ref = both(covariance, tol=1e-3, **start(covariance))
    labels, ref_labels = ours.fit_predict(X), ref.fit_predict(X)
    assert ours.converged_ and ours.n_iter_ > 2
    assert_same_fit(ours, ref, X)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(labels, ours.predict(X))

    # tol=0 never converges: both run max_iter iterations and warn.
    ours.set_params(tol=0.0)
    ref.set_params(tol=0.0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        ours.fit(X)
    with pytest.warns(ConvergenceWarning):
        ref.fit(X)
    assert ours.n_iter_ == MAX_ITER and not ours.converged_
    assert_same_fit(ours, ref, X)


def test_partial_start_is_completed_by_init_params():
    """Parameters not given come from init_params's initialisation; the fit then equals scikit-learn's from there."""
    means = start("full")["means_init"]
    given = GaussianMixture(K, means_init=means, max_iter=0, random_state=5).fit(X)
    plain = GaussianMixture(K, max_iter=0, random_state=5).fit(X)
    np.testing.assert_array_equal(given.means_, means)
    np.testing.assert_array_equal(given.weights_, plain.weights_)
    np.testing.assert_array_equal(given.precisions_cholesky_, plain.precisions_cholesky_)
    assert not np.allclose(plain.means_, means)

    ours = GaussianMixture(K, means_init=means, max_iter=MAX_ITER, random_state=5).fit(X)
    ref = SkGaussianMixture(
        K, weights_init=plain.weights_, means_init=means, precisions_init=plain.precisions_, max_iter=MAX_ITER
    ).fit(X)
    assert_same_fit(ours, ref, X)


def test_max_iter_zero_initialises_only_as_sklearn_does():
    ours, ref = both(max_iter=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # neither warns
        ours.fit(X)
        ref.fit(X)
    assert (ours.n_iter_, ours.converged_, ours.lower_bound_, ours.lower_bounds_) == (
        ref.n_iter_, ref.converged_, ref.lower_bound_, ref.lower_bounds_,
    ) == (0, False, -np.inf, [])
    np.testing.assert_allclose(ours.weights_.sum(), 1.0)


def test_warm_start_continues_as_sklearn_does():
    kwargs = dict(warm_start=True, tol=1e-3, **start("full"))
    ours, ref = both(**kwargs)
    # The first fit stops after one iteration (no convergence), the second
    # continues over many, the third converges at its first iteration (its
    # change judged against the previous lower_bound_).
    for max_iter, expect_one in [(1, True), (MAX_ITER, False), (MAX_ITER, True)]:
        ours.set_params(max_iter=max_iter)
        ref.set_params(max_iter=max_iter)
        quiet_fit(ours, X)
        quiet_fit(ref, X)
        assert_same_fit(ours, ref, X)
        assert (ours.n_iter_ == 1) == expect_one
    assert ours.converged_


def test_integer_sample_weight_equals_repeated_rows_in_sklearn():
    weights = np.random.default_rng(0).integers(0, 4, size=X.shape[0])
    init = start("full")
    ours, ref = both(tol=1e-3, **init)
    ours.fit(X, sample_weight=weights)
    repeated = np.repeat(X, weights, axis=0)
    ref.fit(repeated)
    assert ours.converged_ and ref.converged_
    assert_same_fit(ours, ref, X)
    np.testing.assert_allclose(ours.score(X, sample_weight=weights), ref.score(repeated), rtol=1e-10)


def test_verbose_output_matches_sklearn(capsys):
    for verbose in (1, 2):
        outputs = []
        for estimator in both(tol=1e-3, verbose=verbose, verbose_interval=2, **start("full")):
            estimator.fit(X)
            outputs.append(re.sub(r"time lapse [0-9.]+s", "time lapse Ts", capsys.readouterr().out))
        assert outputs[0].startswith("Initialization 0\n  Iteration 2")
        assert "converged." in outputs[0]
        assert outputs[0] == outputs[1]


def test_verbose_names_each_restart(capsys):
    means = start("full")["means_init"]
    GaussianMixture(K, n_init=2, means_init=means, tol=1e-3, max_iter=MAX_ITER, random_state=0,
                    verbose=1, verbose_interval=2).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Initialization 0" and "Initialization 1" in lines
    assert "  Initialization 1, iteration 2" in lines
    closing = {line for line in lines if line.endswith(".")}
    assert closing == {"Initialization 0 converged.", "Initialization 1 converged."}


# -- precision ------------------------------------------------------------------


def test_float64_with_x64_off_and_the_flag_left_as_found():
    with jax.enable_x64(False):
        ours, ref = both("diag", tol=1e-3, **start("diag"))
        ours.fit(X)
        ref.fit(X)
        assert not jax.config.read("jax_enable_x64")
        assert ours.means_.dtype == np.float64
        assert_same_fit(ours, ref, X)
        assert ours.mixture_.weights.dtype == np.float32  # built in the caller's mode
    with jax.enable_x64(True):
        assert ours.mixture_.weights.dtype == np.float64


def test_float32_input_is_fitted_in_float32():
    ours, ref = both("diag", tol=1e-3, **start("diag"))
    ours.fit(X.astype(np.float32))
    ref.fit(X)
    assert ours.means_.dtype == ours.covariances_.dtype == np.float32
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-4)


# -- sampling -------------------------------------------------------------------


def test_sample_is_grouped_reproducible_and_follows_the_components():
    gm, _ = both(tol=1e-3, random_state=0, **start("full"))
    gm.fit(X)
    x, z = gm.sample(4000)
    assert x.shape == (4000, 2) and z.dtype == np.int64
    assert np.all(np.diff(z) >= 0)  # grouped by component, as scikit-learn returns them
    x2, z2 = gm.sample(4000)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(z, z2)
    counts = np.bincount(z, minlength=K)
    assert np.all(np.abs(counts - 4000 * gm.weights_) < 5 * np.sqrt(4000 * gm.weights_ * (1 - gm.weights_)))
    for k in range(K):
        rows = x[z == k]
        se = np.sqrt(np.diag(gm.covariances_[k]) / len(rows))
        assert np.all(np.abs(rows.mean(axis=0) - gm.means_[k]) < 5 * se)
        cov = gm.covariances_[k]
        np.testing.assert_allclose(np.cov(rows.T), cov, rtol=0.15, atol=0.15 * np.max(cov))
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


# -- MixtureModel for other families -------------------------------------------


def poisson_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 8.0], [12.0, 2.0], [30.0, 25.0]])
    weights = np.array([0.3, 0.3, 0.4])
    z = rng.choice(3, size=n, p=weights)
    return rng.poisson(rates[z]).astype(np.float64), rates, weights


def bernoulli_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    probs = np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.1], [0.1, 0.2, 0.9, 0.8, 0.3, 0.9]])
    weights = np.array([0.35, 0.65])
    z = rng.choice(2, size=n, p=weights)
    return (rng.uniform(size=(n, 6)) < probs[z]).astype(np.float64), probs, weights


def matched(estimated, true):
    """Rows of ``estimated`` reordered to the rows of ``true`` nearest them."""
    order = [int(np.argmin(np.sum((estimated - t) ** 2, axis=1))) for t in true]
    assert sorted(order) == list(range(len(true)))
    return np.asarray(order)


@pytest.mark.slow
def test_poisson_model_recovers_rates_and_equals_mx_fit():
    x, rates, weights = poisson_data()
    model = MixtureModel(mx.Poisson(), n_components=3, n_init=3, tol=1e-8, max_iter=MAX_ITER, random_state=0).fit(x)
    order = matched(model.params_.rates, rates)
    np.testing.assert_allclose(model.params_.rates[order], rates, rtol=0.15)
    np.testing.assert_allclose(model.weights_[order], weights, atol=0.06)
    assert model.converged_ and isinstance(model.mixture_, mx.Mixture)
    # The same fit through mx.fit, with the documented key for random_state=0.
    key = jax.random.key(np.random.RandomState(0).randint(2**31 - 1))
    ref = mx.fit(x, mx.Poisson(), 3, key=key, n_init=3, tol=1e-8, max_iter=MAX_ITER)
    n = int(ref.n_iter)
    assert (model.n_iter_, model.converged_) == (n, bool(ref.converged))
    np.testing.assert_array_equal(model.weights_, np.asarray(ref.mixture.weights))
    np.testing.assert_array_equal(model.params_.rates, np.asarray(ref.mixture.params.rates))
    np.testing.assert_array_equal(model.lower_bounds_, np.asarray(ref.history)[:n])
    assert model.lower_bound_ == float(ref.history[n - 1])
    # Densities against SciPy's Poisson log-pmf.
    comp = np.stack([poisson.logpmf(x, model.params_.rates[k]).sum(axis=1) for k in range(3)], axis=1)
    comp += np.log(model.weights_)
    expected = logsumexp(comp, axis=1)
    np.testing.assert_allclose(model.score_samples(x), expected, rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(x), np.exp(comp - expected[:, None]), atol=1e-10)
    np.testing.assert_array_equal(model.predict(x), np.argmax(comp, axis=1))
    np.testing.assert_allclose(model.score(x), expected.mean(), rtol=1e-10)
    p = 3 * 2 + 2
    np.testing.assert_allclose(model.bic(x), -2 * expected.sum() + p * np.log(len(x)), rtol=1e-10)
    np.testing.assert_allclose(model.aic(x), -2 * expected.sum() + 2 * p, rtol=1e-10)
    with pytest.raises(ValueError, match="non-negative integer counts"):
        model.predict(x - 100)


def test_bernoulli_model_from_a_start_equals_mx_fit_and_recovers_probabilities():
    x, probs, weights = bernoulli_data()
    family = mx.Bernoulli()
    probs_start = np.array([[0.6] * 3 + [0.4] * 3, [0.4] * 3 + [0.6] * 3])
    first = mx.Mixture(np.array([0.5, 0.5]), family.make_params(probs_start), family)
    model = MixtureModel(family, 2, mixture_init=first, tol=1e-8, max_iter=MAX_ITER)
    labels = model.fit_predict(x)
    ref = mx.fit(x, family, 2, key=None, init=first, tol=1e-8, max_iter=MAX_ITER)
    assert (model.n_iter_, model.converged_) == (int(ref.n_iter), True)
    np.testing.assert_array_equal(model.params_.probs, np.asarray(ref.mixture.params.probs))
    order = matched(model.params_.probs, probs)
    np.testing.assert_allclose(model.params_.probs[order], probs, atol=0.05)
    np.testing.assert_allclose(model.weights_[order], weights, atol=0.04)
    # Densities against SciPy's Bernoulli log-pmf.
    comp = np.stack([bernoulli.logpmf(x, model.params_.probs[k]).sum(axis=1) for k in range(2)], axis=1)
    comp += np.log(model.weights_)
    np.testing.assert_allclose(model.score_samples(x), logsumexp(comp, axis=1), rtol=1e-10)
    np.testing.assert_array_equal(labels, np.argmax(comp, axis=1))


# -- scikit-learn tools -----------------------------------------------------------


def test_pipeline_with_a_scaler_matches_sklearn():
    scaled = StandardScaler().fit_transform(X)
    init = start("full", x=scaled)
    ours = make_pipeline(StandardScaler(), GaussianMixture(K, tol=1e-3, max_iter=MAX_ITER, **init)).fit(X)
    ref = make_pipeline(StandardScaler(), SkGaussianMixture(K, tol=1e-3, max_iter=MAX_ITER, **init)).fit(X)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.score(X), ref.score(X), rtol=1e-6)
    np.testing.assert_allclose(ours[-1].means_, ref[-1].means_, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_grid_search_scores_by_held_out_log_likelihood():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    x = centres[rng.integers(0, 3, size=300)] + rng.normal(size=(300, 2))
    folds = KFold(3, shuffle=True, random_state=0)
    grid = {"n_components": [2, 3]}
    base = GaussianMixture(tol=1e-6, max_iter=MAX_ITER, init_params="k-means++", random_state=0)
    search = GridSearchCV(base, grid, cv=folds, refit=False).fit(x)
    assert search.best_params_ == {"n_components": 3}
    for i, k in enumerate(grid["n_components"]):
        held_out = [
            GaussianMixture(k, tol=1e-6, max_iter=MAX_ITER, init_params="k-means++", random_state=0)
            .fit(x[train])
            .score(x[test])
            for train, test in folds.split(x)
        ]
        np.testing.assert_allclose(search.cv_results_["mean_test_score"][i], np.mean(held_out), rtol=1e-12)
    # Three separated clusters have one maximum: scikit-learn's search finds the same scores.
    ref = SkGaussianMixture(3, tol=1e-6, max_iter=MAX_ITER, random_state=0)
    ref_search = GridSearchCV(ref, {}, cv=folds, refit=False).fit(x)
    scores = search.cv_results_["mean_test_score"]
    np.testing.assert_allclose(scores[1], ref_search.cv_results_["mean_test_score"][0], rtol=1e-5)


# -- bad input ----------------------------------------------------------------------


@pytest.fixture
def no_compilation(monkeypatch):
    """Fails the test if the estimator reaches a compiled program or any XLA compilation starts."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("a fitting function ran: the input was not rejected first")

    monkeypatch.setattr(mxs, "_mx_fit", must_not_run)
    monkeypatch.setattr(mxs, "_initialize_restarts", must_not_run)
    with recording_compilations() as events:
        yield events


FULL = start("full")
NOT_PD = np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)
ASYMMETRIC = np.array([[[1.0, 0.5], [0.0, 1.0]]] * 2)
# (id, constructor arguments, fit arguments, error, message pattern)
BAD = [
    ("covariance_type", dict(covariance_type="fulll"), {}, ValueError, "covariance_type"),
    ("init_params", dict(init_params="kmeans+"), {}, ValueError, "init_params"),
    ("n_components_zero", dict(n_components=0), {}, ValueError, "n_components"),
    ("n_components_float", dict(n_components=2.0), {}, TypeError, "n_components"),
    ("n_components_above_n", dict(n_components=300), {}, ValueError, "n_components"),
    ("tol", dict(tol=-1.0), {}, ValueError, "tol"),
    ("reg_covar", dict(reg_covar=float("nan")), {}, ValueError, "reg_covar"),
    ("max_iter", dict(max_iter=-1), {}, ValueError, "max_iter"),
    ("n_init", dict(n_init=0), {}, ValueError, "n_init"),
    ("random_state", dict(random_state="seed"), {}, TypeError, "random_state"),
    ("warm_start", dict(warm_start="yes"), {}, TypeError, "warm_start"),
    ("verbose_interval", dict(verbose_interval=0), {}, ValueError, "verbose_interval"),
    ("weights_init_sum", dict(weights_init=[0.5, 0.6]), {}, ValueError, "weights_init.*sum to 1"),
    ("weights_init_shape", dict(weights_init=[1.0]), {}, ValueError, "weights_init.*shape"),
    ("means_init_shape", dict(means_init=np.zeros((2, 3))), {}, ValueError, r"means_init.*\(2, 2\)"),
    ("means_init_nan", dict(means_init=np.full((2, 2), np.nan)), {}, ValueError, "means_init.*finite"),
    ("precisions_init_shape", dict(precisions_init=np.ones((2, 2))), {}, ValueError, r"precisions_init.*\(2, 2, 2\)"),
    ("precisions_init_tied_shape", dict(covariance_type="tied", precisions_init=FULL["precisions_init"]), {},
     ValueError, "precisions_init.*shape"),
    ("precisions_init_not_pd", dict(precisions_init=NOT_PD), {}, ValueError, "precisions_init.*positive definite"),
    ("precisions_init_asymmetric", dict(precisions_init=ASYMMETRIC), {}, ValueError, "precisions_init.*symmetric"),
    ("precisions_init_diag_negative", dict(covariance_type="diag", precisions_init=-np.ones((2, 2))), {},
     ValueError, "precisions_init.*positive"),
    ("sample_weight_negative", {}, dict(sample_weight=-np.ones(272)), ValueError, "sample_weight.*non-negative"),
    ("sample_weight_nan", {}, dict(sample_weight=np.r_[np.nan, np.ones(271)]), ValueError, "sample_weight.*finite"),
    ("sample_weight_length", {}, dict(sample_weight=np.ones(271)), ValueError, r"sample_weight.*\(272,\)"),
    ("sample_weight_zero", {}, dict(sample_weight=np.zeros(272)), ValueError, "sample_weight.*positive"),
    ("sample_weight_too_few_positive", {}, dict(sample_weight=np.r_[1.0, np.zeros(271)]),
     ValueError, "n_components.*sample_weight"),
    ("x_nan", {}, dict(X=np.r_[X[:-1], [[np.nan, 1.0]]]), ValueError, "NaN"),
]


@pytest.mark.parametrize("params, fit_args, error, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_gaussian_mixture_rejects_bad_input_before_compiling(params, fit_args, error, match, no_compilation):
    fit_args = dict(fit_args)
    x = fit_args.pop("X", X)
    estimator = GaussianMixture(**{"n_components": K, **params})
    with pytest.raises(error, match=match):
        estimator.fit(x, **fit_args)
    assert not no_compilation


POISSON = mx.Poisson()
BAD_MODEL = [
    ("family", dict(family="poisson"), X, TypeError, "family"),
    ("data_outside_family", dict(family=POISSON), X, ValueError, "non-negative integer counts"),
    ("mixture_init_type", dict(mixture_init="start"), X, TypeError, "mixture_init"),
    ("mixture_init_family", dict(family=POISSON, mixture_init=mx.Mixture(
        np.array([0.5, 0.5]), mx.Gaussian().make_params(np.zeros((2, 2)), np.stack([np.eye(2)] * 2)), mx.Gaussian()
    )), np.round(X), ValueError, "mixture_init.*family"),
    ("mixture_init_components", dict(family=POISSON, mixture_init=mx.Mixture(
        np.array([1.0]), POISSON.make_params(np.ones((1, 2))), POISSON
    )), np.round(X), ValueError, "mixture_init.*components"),
    ("mixture_init_weights", dict(family=POISSON, mixture_init=mx.Mixture(
        np.array([0.7, 0.7]), POISSON.make_params(np.ones((2, 2))), POISSON
    )), np.round(X), ValueError, "mixture_init.weights"),
]


@pytest.mark.parametrize("params, x, error, match", [b[1:] for b in BAD_MODEL], ids=[b[0] for b in BAD_MODEL])
def test_mixture_model_rejects_bad_input_before_compiling(params, x, error, match, no_compilation):
    with pytest.raises(error, match=match):
        MixtureModel(n_components=K, **params).fit(x)
    assert not no_compilation


def test_methods_reject_bad_input_and_unfitted_use():
    gm = GaussianMixture(K)
    with pytest.raises(AttributeError):  # NotFittedError is an AttributeError
        gm.mixture_
    gm.set_params(tol=1e-3, **start("full")).fit(X)
    with pytest.raises(ValueError, match="features"):
        gm.predict(X[:, :1])
    with pytest.raises(ValueError, match="sample_weight"):
        gm.score(X, sample_weight=np.ones(3))
    gm.set_params(warm_start=True, covariance_type="diag")
    with pytest.raises(ValueError, match="covariance_type"):
        gm.fit(X)
    gm.set_params(covariance_type="full", n_components=3)
    with pytest.raises(ValueError, match="n_components"):
        gm.fit(X)


# -- optional dependency ----------------------------------------------------------------


def test_import_mixtures_leaves_sklearn_unimported():
    code = "import sys, mixtures; print('mixtures.sklearn' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_import_without_sklearn_says_how_to_install(monkeypatch):
    for name in list(sys.modules):
        if name == "sklearn" or name.startswith("sklearn."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "mixtures.sklearn")
    with pytest.raises(ImportError, match=re.escape('pip install "jax-mixtures[sklearn]"')):
        importlib.import_module("mixtures.sklearn")


# -- every built-in family through scikit-learn's checks, with its input tags ------------------------

# scikit-learn draws the checks' data itself; MixtureModel declares what its family accepts through
# input tags read from the family's check_data (positive_only, plus categorical for counts). Where no
# tag describes the domain, the checks that fit on scikit-learn's own data cannot pass: each family
# lists them here with the reason (docs/reliability.md has the same table).
_REAL_DATA_FITS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_estimators_dtypes", "check_sample_weights_not_an_array", "check_sample_weights_list",
    "check_dtype_object", "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d",
)
_NARROW_DOMAIN = _REAL_DATA_FITS + (
    "check_positive_only_tag_during_fit", "check_sample_weights_shape", "check_sample_weights_not_overwritten",
    "check_sample_weight_equivalence_on_dense_data",
)
_FIXED_COLUMNS = (
    "check_fit_score_takes_y", "check_dont_overwrite_parameters", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_sample_weights_list",
    "check_sample_weight_equivalence_on_dense_data", "check_dtype_object", "check_pipeline_consistency",
    "check_estimators_nan_inf", "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1feature",
    "check_dict_unchanged", "check_fit2d_predict1d",
)
FAMILY_CHECKS = {
    # name: (family, checks that cannot pass, why)
    "poisson": (mx.Poisson(), ("check_sample_weight_equivalence_on_dense_data",),
                "draws real-valued data whatever the tags; Poisson data are non-negative integer counts"),
    "exponential": (mx.Exponential(), _REAL_DATA_FITS,
                    "positive_only data are X - X.min(), which holds 0, outside x > 0"),
    "gamma": (mx.Gamma(), _REAL_DATA_FITS, "positive_only data are X - X.min(), which holds 0, outside x > 0"),
    "bernoulli": (mx.Bernoulli(), _NARROW_DOMAIN, "no scikit-learn tag means 0/1 data"),
    "categorical": (mx.Categorical((3, 3)), _NARROW_DOMAIN,
                    "no tag means codes below each feature's C; the family fixes the number of columns"),
    "von-mises-fisher": (mx.VonMisesFisher(), _NARROW_DOMAIN, "no scikit-learn tag means rows of unit norm"),
    "student-t": (mx.StudentT(), (), ""),
    "independent": (
        mx.Independent(((mx.Gaussian("diag"), (0,)), (mx.Gaussian("diag"), (1,)))), _FIXED_COLUMNS,
        "the family fixes the number of columns, which the checks vary",
    ),
}

def _expected_failures(estimator):
    name = next(n for n, (family, _, _) in FAMILY_CHECKS.items() if family == estimator.family)
    _, names, why = FAMILY_CHECKS[name]
    return {check: why for check in names}


FAMILY_ESTIMATORS = [
    MixtureModel(family, max_iter=5, init_params="random_from_data") for family, _, _ in FAMILY_CHECKS.values()
]


@parametrize_with_checks(FAMILY_ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks_for_every_family(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize(
    "family, positive_only, categorical",
    [(mx.Gaussian(), False, False), (mx.Poisson(), True, True), (mx.Exponential(), True, False),
     (mx.Gamma(), True, False), (mx.Bernoulli(), False, False), (mx.StudentT(), False, False),
     (mx.Independent(((mx.Gaussian("diag"), (0,)), (mx.Poisson(), (1,)))), False, False)],
)
def test_input_tags_follow_the_family_domain(family, positive_only, categorical):
    tags = MixtureModel(family).__sklearn_tags__().input_tags
    assert (tags.positive_only, tags.categorical) == (positive_only, categorical)
    if positive_only:
        with pytest.raises(ValueError, match="Negative values in data passed to MixtureModel.fit"):
            MixtureModel(family, n_components=1).fit(-np.ones((4, 1)))
