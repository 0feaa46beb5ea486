"""MAP-EM with conjugate priors: monotone log posterior, the MLE limit, the closed-form M-step, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mixtures as mx
from mixtures._src.engine import em as engine
from mixtures._src.fitting import fit as fitting
from mixtures._src.core.priors import ConjugatePrior, DirichletPrior, Prior
from mixtures._src.families.gaussian.prior import GaussianPrior
from tests.helpers import blobs, dense_covariances

COVARIANCES = ("full", "diag", "spherical", "tied")
X, Z = blobs(0, 150, [[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]], [1.0, 0.6, 0.8])
ONE_PER_CLUSTER = [int(np.argmax(Z == j)) for j in range(3)]
_RNG = np.random.default_rng(1)
COUNTS = np.concatenate([_RNG.poisson(2.0, (100, 3)), _RNG.poisson(8.0, (80, 3))]).astype(np.float64)


def _start(family, x, rows):
    """A warm start at the given rows with unit covariances (a cheap compile: no initialisation code)."""
    k, d = len(rows), x.shape[1]
    cov = {"full": np.broadcast_to(np.eye(d), (k, d, d)), "tied": np.eye(d), "diag": np.ones((k, d))}
    params = family.make_params(x[rows], cov.get(family.covariance, np.ones(k)))
    return mx.Mixture(np.full(k, 1.0 / k), params, family)


def _poisson_start(rows):
    return mx.Mixture(np.full(len(rows), 1.0 / len(rows)), mx.Poisson().make_params(COUNTS[rows] + 0.5), mx.Poisson())


def _gaussian_fit(covariance, start, prior, weight=1.0):
    """30 EM iterations from ``start`` with ``tol=0``; one compiled program per covariance and prior structure."""
    family = mx.Gaussian(covariance, reg_covar=0.0)  # no ridge: the M-step is the exact posterior mode
    sample_weight = np.full(len(X), weight)
    return mx.fit(X, family, 3, key=None, init=start, max_iter=30, tol=0.0, sample_weight=sample_weight, prior=prior)


def _assert_monotone(history):
    h = np.asarray(history)
    assert np.all(np.isfinite(h))
    assert np.min(np.diff(h)) >= -1e-12 * np.max(np.abs(h)), np.diff(h)


# -- (1) the log posterior never decreases, and it is what the fit reports --------------------


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_gaussian_log_posterior_never_decreases(covariance):
    family = mx.Gaussian(covariance, reg_covar=0.0)
    prior = Prior("default", DirichletPrior(3.0))
    result = _gaussian_fit(covariance, _start(family, X, [0, 1, 2]), prior)  # all in one cluster: a long climb
    assert int(result.n_iter) == 30
    _assert_monotone(result.history)
    checked = fitting.check_prior(prior, family, jnp.asarray(X), 3)
    log_posterior = np.mean(result.mixture.log_prob(X)) + engine.log_prior(result.mixture, checked) / len(X)
    np.testing.assert_allclose(result.log_likelihood, log_posterior, rtol=1e-12)
    _assert_monotone(np.append(result.history, result.log_likelihood))  # the returned mixture's value too


def test_poisson_log_posterior_never_decreases():
    prior = Prior(ConjugatePrior(5.0, COUNTS.mean(axis=0)), DirichletPrior(2.0))
    result = mx.fit(COUNTS, mx.Poisson(), 2, key=None, init=_poisson_start([0, 1]), max_iter=30, tol=0.0, prior=prior)
    _assert_monotone(result.history)
    checked = fitting.check_prior(prior, mx.Poisson(), jnp.asarray(COUNTS), 2)
    log_posterior = np.mean(result.mixture.log_prob(COUNTS)) + engine.log_prior(result.mixture, checked) / len(COUNTS)
    np.testing.assert_allclose(result.log_likelihood, log_posterior, rtol=1e-12)


# -- (2) a vanishing prior recovers the maximum-likelihood fit ---------------------------------


@pytest.mark.parametrize("covariance", ["full", "tied"])
def test_gaussian_vanishing_prior_recovers_mle(covariance):
    # A proper normal–inverse-Wishart carries at least 2D + 1 pseudo-observations on Σ, so the
    # vanishing limit is taken on the data side: with every row weighted c, the posterior is
    # likelihood^c · prior ∝ (likelihood · prior^(1/c))^c, the prior tempered to κ₀/c, Ψ/c and
    # ν₀ + D + 2 → (ν₀ + D + 2)/c, i.e. κ₀ → 0, Ψ → 0 and ν₀ → −(D + 2) as c grows.
    # Both fits run the same 30 iterations from the same start, so every iterate is compared.
    start = _start(mx.Gaussian(covariance, reg_covar=0.0), X, ONE_PER_CLUSTER)
    mle = _gaussian_fit(covariance, start, None, weight=1e8)
    vanishing = _gaussian_fit(covariance, start, Prior("default", DirichletPrior(1.0)), weight=1e8)
    np.testing.assert_allclose(vanishing.history, mle.history, rtol=1e-6)
    np.testing.assert_allclose(vanishing.mixture.weights, mle.mixture.weights, rtol=1e-6)
    np.testing.assert_allclose(vanishing.mixture.params.means, mle.mixture.params.means, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        vanishing.mixture.params.covariances, mle.mixture.params.covariances, rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(vanishing.log_likelihood, mle.log_likelihood, rtol=1e-6)


def test_poisson_vanishing_prior_recovers_mle():
    start = _poisson_start([0, 150])
    mle = mx.fit(COUNTS, mx.Poisson(), 2, key=None, init=start, max_iter=100, tol=1e-12)
    prior = Prior(ConjugatePrior(1e-10, COUNTS.mean(axis=0)), DirichletPrior(1.0))
    vanishing = mx.fit(COUNTS, mx.Poisson(), 2, key=None, init=start, max_iter=100, tol=1e-12, prior=prior)
    np.testing.assert_allclose(vanishing.mixture.params.rates, mle.mixture.params.rates, rtol=1e-6)
    np.testing.assert_allclose(vanishing.mixture.weights, mle.mixture.weights, rtol=1e-6)
    np.testing.assert_allclose(vanishing.history, mle.history, rtol=1e-6)


# -- (3) the Gaussian MAP M-step is the normal–inverse-Wishart posterior mode ------------------


def _reference_mode(covariance, x, resp, prior):
    """mclust's closed forms (Fraley and Raftery 2007, table 2) from the raw data, in NumPy."""
    mu0, kappa, nu, psi = (np.asarray(v, np.float64) for v in prior)
    kappa, nu = float(kappa), float(nu)
    k, d = resp.shape[1], x.shape[1]
    n = resp.sum(axis=0)
    xbar = resp.T @ x / n[:, None]
    means = (n[:, None] * xbar + kappa * mu0[None, :]) / (n + kappa)[:, None]
    scatter = []  # W_k + κN/(κ+N) (x̄ − μ₀)(x̄ − μ₀)ᵀ
    for j in range(k):
        c = x - xbar[j]
        dev = xbar[j] - mu0
        scatter.append((resp[:, j, None] * c).T @ c + kappa * n[j] / (kappa + n[j]) * np.outer(dev, dev))
    scatter = np.stack(scatter)
    if covariance == "full":
        covs = (psi[None] + scatter) / (nu + n + d + 2)[:, None, None]
    elif covariance == "tied":
        covs = (psi + scatter.sum(axis=0)) / (nu + n.sum() + d + k + 1)
    elif covariance == "diag":
        covs = (psi[None] + np.diagonal(scatter, axis1=1, axis2=2)) / (nu + n + 3)[:, None]
    else:
        covs = (psi + np.trace(scatter, axis1=1, axis2=2)) / (nu + (n + 1) * d + 2)
    return means, covs


def _scipy_log_posterior(covariance, x, resp, prior, means, covs):
    """Σₖ Σₙ rₙₖ log N(xₙ | μₖ, Σₖ) + log p(θ), with SciPy's normalised densities."""
    mu0, kappa, nu, psi = (np.asarray(v, np.float64) for v in prior)
    kappa, nu = float(kappa), float(nu)
    k, d = resp.shape[1], x.shape[1]
    dense = dense_covariances(covariance, covs, k, d)
    total = sum(resp[:, j] @ stats.multivariate_normal(means[j], dense[j]).logpdf(x) for j in range(k))
    for j in range(k):
        total += stats.multivariate_normal(mu0, dense[j] / kappa).logpdf(means[j])
    if covariance == "full":
        total += sum(stats.invwishart(df=nu, scale=psi).logpdf(c) for c in covs)
    elif covariance == "tied":
        total += stats.invwishart(df=nu, scale=psi).logpdf(covs)
    else:  # one inverse-gamma per variance (per feature for "diag")
        total += np.sum(stats.invgamma(nu / 2, scale=psi / 2).logpdf(covs))
    return total


def map_problem(seed, layout):
    """Rows, random responsibilities (K = 3) and a prior of ``layout`` for the MAP-step tests, and the generator."""
    rng = np.random.default_rng(seed)
    x = X[::3]
    k, d = 3, x.shape[1]
    resp = rng.dirichlet(np.ones(k), size=len(x))
    a = rng.normal(size=(d, d))
    scale = {"full": a @ a.T + np.eye(d), "diag": np.array([0.7, 1.9]), "spherical": np.array(1.3)}[layout]
    return rng, x, resp, GaussianPrior(np.array([0.5, -1.0]), np.array(0.8), np.array(d + 0.5), scale)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_gaussian_map_step_is_the_posterior_mode(covariance):
    rng, x, resp, prior = map_problem(3, "full" if covariance == "tied" else covariance)
    k = resp.shape[1]
    family = mx.Gaussian(covariance, reg_covar=0.0)
    previous = _start(family, x, [3, 17, 40]).params  # the statistics' shift: arbitrary means
    prior = family.check_prior(prior, jnp.asarray(x))
    weights = np.full(k, 1.0 / k)
    new = family.map_step(family.accumulate(previous, x, resp), resp.sum(axis=0), previous, prior, weights)

    ref_means, ref_covs = _reference_mode(covariance, x, resp, prior)
    covs = np.asarray(new.covariances)
    np.testing.assert_allclose(new.means, ref_means, rtol=1e-10)
    np.testing.assert_allclose(covs[0] if covariance == "tied" else covs, ref_covs, rtol=1e-10)

    # The mode of SciPy's normalised posterior: no nearby parameters score higher ...
    best = _scipy_log_posterior(covariance, x, resp, prior, ref_means, ref_covs)
    for i in range(6):
        factor = 1.0 + 0.05 * rng.normal(size=np.shape(ref_covs)[-1:] if covariance != "spherical" else ())
        scaled = ref_covs * (np.outer(factor, factor) if covariance in ("full", "tied") else factor)
        moved = ref_means + 0.05 * rng.normal(size=ref_means.shape) * (i % 2)
        assert _scipy_log_posterior(covariance, x, resp, prior, moved, scaled) < best
    # ... and the family's log prior differs from SciPy's by a constant only.
    theirs = [
        _scipy_log_posterior(covariance, x, np.zeros_like(resp), prior, m, c)
        for m, c in ((ref_means, ref_covs), (np.asarray(previous.means), _layout(covariance, previous.covariances)))
    ]
    ours = [float(family.log_prior(p, prior, weights)) for p in (new, previous)]
    np.testing.assert_allclose(ours[0] - ours[1], theirs[0] - theirs[1], rtol=1e-10)


def _layout(covariance, covs):
    covs = np.asarray(covs)
    return covs[0] if covariance == "tied" else covs


# mclust's other ten models: one prior on the one covariance of EII and EEI, one per component
# for the rest; the MAP step is the mode of SciPy's posterior among covariances of the model's form.
OTHER_MODELS = ("EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV")


def _dense(model, covs, k, d):
    covs = np.asarray(covs, np.float64)
    if covs.ndim == 3:
        return covs
    if covs.ndim == 2:
        return np.stack([np.diag(c) for c in covs])
    return np.stack([np.eye(d) * c for c in np.broadcast_to(covs, (k,))])


def _scipy_log_posterior_of_model(model, x, resp, prior, means, dense):
    mu0, kappa, nu, psi = (np.asarray(v, np.float64) for v in prior)
    kappa, nu = float(kappa), float(nu)
    k = resp.shape[1]
    total = sum(resp[:, j] @ stats.multivariate_normal(means[j], dense[j]).logpdf(x) for j in range(k))
    total += sum(stats.multivariate_normal(mu0, dense[j] / kappa).logpdf(means[j]) for j in range(k))
    if model == "EII":
        return total + stats.invgamma(nu / 2, scale=psi / 2).logpdf(dense[0, 0, 0])
    if model == "EEI":
        return total + np.sum(stats.invgamma(nu / 2, scale=psi / 2).logpdf(np.diag(dense[0])))
    if model in ("VEI", "EVI"):
        variances = np.diagonal(dense, axis1=1, axis2=2)
        return total + np.sum(stats.invgamma(nu / 2, scale=psi[None] / 2).logpdf(variances))
    return total + sum(stats.invwishart(df=nu, scale=psi).logpdf(c) for c in dense)


@pytest.mark.parametrize("model", OTHER_MODELS)
def test_map_step_of_the_other_models_is_the_posterior_mode_of_their_form(model):
    from mixtures._src.families.gaussian import models

    layout = models.layout(model)
    rng, x, resp, prior = map_problem(4, layout)
    k, d = resp.shape[1], x.shape[1]
    family = mx.Gaussian(model, reg_covar=0.0)
    unit = {"full": np.broadcast_to(np.eye(d), (k, d, d)), "diag": np.ones((k, d)), "spherical": np.ones(k)}[layout]
    previous = family.make_params(x[[3, 17, 40]], unit)
    prior = family.check_prior(prior, jnp.asarray(x))
    weights = np.full(k, 1.0 / k)
    new = family.map_step(family.accumulate(previous, x, resp), resp.sum(axis=0), previous, prior, weights)

    ref_means, _ = _reference_mode("full", x, resp, prior if layout == "full" else prior._replace(scale=np.eye(d)))
    np.testing.assert_allclose(new.means, ref_means, rtol=1e-10)
    covs = np.asarray(new.covariances)
    models.check_form(model, covs, 1e-9)
    best = _scipy_log_posterior_of_model(model, x, resp, prior, ref_means, _dense(model, covs, k, d))
    # Covariances of the model's form near the mode (the model's projection of perturbed ones) score lower.
    on = np.ones(k, bool)
    for i in range(6):
        if layout == "full":
            b = np.eye(d) + 0.05 * rng.normal(size=(k, d, d))
            perturbed = np.einsum("kij,kjl,kml->kim", b, covs, b)
        else:
            perturbed = np.broadcast_to(covs, unit.shape) * (1.0 + 0.05 * rng.normal(size=unit.shape))
            if layout == "spherical":
                perturbed = np.repeat(perturbed[:, None], d, axis=1)
        moved = np.asarray(models.constrained_covariances(model, perturbed, np.ones(k), covs, on))
        models.check_form(model, moved, 1e-9)
        means = ref_means + 0.05 * rng.normal(size=ref_means.shape) * (i % 2)
        assert _scipy_log_posterior_of_model(model, x, resp, prior, means, _dense(model, moved, k, d)) < best
    # The family's log prior differs from SciPy's by a constant only.
    none = np.zeros_like(resp)
    theirs = [
        _scipy_log_posterior_of_model(model, x, none, prior, np.asarray(p.means), _dense(model, p.covariances, k, d))
        for p in (new, previous)
    ]
    ours = [float(family.log_prior(p, prior, weights)) for p in (new, previous)]
    np.testing.assert_allclose(ours[0] - ours[1], theirs[0] - theirs[1], rtol=1e-10)


@pytest.mark.parametrize("model", ("EII", "VEI", "EVE", "VVE", "VEV", "EVV"))
def test_the_other_models_log_posterior_never_decreases(model):
    family = mx.Gaussian(model, reg_covar=0.0)
    k, d = 3, 2
    unit = {"full": np.broadcast_to(np.eye(d), (k, d, d)), "diag": np.ones((k, d)), "spherical": np.ones(k)}
    start = mx.Mixture(np.full(k, 1.0 / k), family.make_params(X[[0, 1, 2]], unit[family.layout]), family)
    result = _gaussian_fit(model, start, Prior("default", DirichletPrior(3.0)))
    assert int(result.n_iter) == 30
    _assert_monotone(result.history)


# -- (4) a prior keeps a component on a single point finite and sensible -----------------------


def test_prior_keeps_a_collapsing_component_sensible():
    x = np.concatenate([X[:100], np.array([[12.0, -9.0]])])  # one far point: its own component
    family = mx.Gaussian("full")
    start = _start(family, x, [0, 100])
    mle = mx.fit(x, family, 2, key=None, init=start, max_iter=50)
    map_fit = mx.fit(x, family, 2, key=None, init=start, max_iter=50, prior="default")
    lonely = np.argmin(mle.mixture.weights)
    assert np.max(np.linalg.eigvalsh(mle.mixture.params.covariances[lonely])) < 1e-5  # collapsed onto the point
    prior = family.default_prior(x, 2)
    nk = float(map_fit.mixture.weights[lonely] * len(x))
    floor = np.min(np.linalg.eigvalsh(prior.scale)) / (nk + float(prior.dof) + 2 + 2)
    eig = np.linalg.eigvalsh(map_fit.mixture.params.covariances[lonely])
    assert np.all(np.isfinite(eig)) and np.isfinite(map_fit.log_likelihood)
    assert 0.5 * floor < np.min(eig) and np.max(eig) < np.max(np.linalg.eigvalsh(np.cov(x.T)))
    np.testing.assert_allclose(map_fit.mixture.params.means[lonely], [12.0, -9.0], atol=0.5)


# -- (5) prior=None is the maximum-likelihood fit, bit for bit ---------------------------------


def test_no_prior_is_bit_identical():
    family = mx.Gaussian("full", reg_covar=0.0)
    start = _start(family, X, ONE_PER_CLUSTER)
    plain = mx.fit(X, family, 3, key=None, init=start, max_iter=30, tol=0.0, sample_weight=np.ones(len(X)))
    none = _gaussian_fit("full", start, None)
    empty = _gaussian_fit("full", start, Prior())  # the prior code path with nothing in it
    for other in (none, empty):
        for u, v in zip(jax.tree.leaves(plain), jax.tree.leaves(other), strict=True):
            np.testing.assert_array_equal(u, v)


# -- (6) bad priors are rejected on the host, before anything is compiled ----------------------

_G = GaussianPrior(np.zeros(2), 0.01, 4.0, np.eye(2))


@pytest.mark.parametrize(
    "family, prior, error, match",
    [
        (mx.Gaussian("full"), _G._replace(mean=np.zeros(3)), ValueError, r"prior\.mean"),
        (mx.Gaussian("full"), _G._replace(shrinkage=0.0), ValueError, r"prior\.shrinkage"),
        (mx.Gaussian("full"), _G._replace(dof=1.0), ValueError, r"prior\.dof.*D − 1"),
        (mx.Gaussian("full"), _G._replace(scale=np.diag([1.0, -1.0])), ValueError, r"positive definite"),
        (mx.Gaussian("full"), _G._replace(scale=np.array([[1.0, 0.5], [0.0, 1.0]])), ValueError, r"symmetric"),
        (mx.Gaussian("diag"), _G, ValueError, r"prior\.scale.*\(D,\)"),
        (mx.Gaussian("spherical"), _G._replace(scale=-1.0), ValueError, r"prior\.scale.*positive"),
        (mx.Gaussian("full"), _G._replace(mean=[np.nan, 0.0]), ValueError, r"finite"),
        (mx.Gaussian("full"), ConjugatePrior(1.0, np.zeros(2)), TypeError, r"GaussianPrior"),
        (mx.Poisson(), _G, TypeError, r"ConjugatePrior"),
        (mx.Poisson(), ConjugatePrior(-1.0, np.ones(2)), ValueError, r"pseudo_count"),
        (mx.Poisson(), ConjugatePrior(1.0, np.ones(3)), ValueError, r"prior\.mean"),
        (mx.Gaussian("full"), DirichletPrior(0.5), ValueError, r"concentration"),
        (mx.Gaussian("full"), Prior(_G, weights=2.0), TypeError, r"prior\.weights"),
        (mx.Gaussian("full"), Prior("mine"), ValueError, r"prior\.components"),
        (mx.StudentT(), "default", TypeError, r"StudentT has no"),
        (mx.StudentT(), _G, TypeError, r"StudentT has no"),
        (mx.Gaussian("full"), "mclust", ValueError, r'"default"'),
        (mx.Gaussian("full"), 3.0, TypeError, r"`prior` must be"),
    ],
)
def test_bad_priors_are_rejected_before_compiling(monkeypatch, family, prior, error, match):
    def compiled(*args, **kwargs):
        raise AssertionError("a compiled fit was reached")

    monkeypatch.setattr(fitting, "_start_restarts", compiled)
    monkeypatch.setattr(fitting, "_start_from", compiled)
    x = np.abs(np.round(X[:20]))  # valid data for every family above
    with pytest.raises(error, match=match):
        mx.fit(x, family, 2, key=jax.random.key(0), prior=prior)


def test_a_dirichlet_prior_alone_works_for_a_family_without_component_priors():
    family = mx.StudentT()
    start = mx.Mixture(np.full(2, 0.5), family.make_params(X[[0, 100]], np.ones((2, 2))), family)
    result = mx.fit(X, family, 2, key=None, init=start, max_iter=5, tol=0.0, prior=DirichletPrior(50.0))
    _assert_monotone(result.history)
    np.testing.assert_allclose(result.mixture.weights, [0.5, 0.5], atol=0.2)  # 49 pseudo-rows each
