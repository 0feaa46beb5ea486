"""Variational Bayes (``mx.fit_variational``) for conjugate families.

Oracles: scikit-learn's ``BayesianGaussianMixture`` run from the same initial
responsibilities for the same number of updates (its E-step made exact for
"diag" and "spherical", where it uses a Wishart expression for what are
independent gamma posteriors); for K = 1, where the variational posterior is
the exact one and the ELBO is the log evidence, closed forms from SciPy and a
direct numerical integral over the precision; SciPy's Student-t and negative
binomial for posterior-predictive densities.
"""

import warnings

import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.stats
from scipy.special import betaln, digamma, gammaln, multigammaln
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.mixture._gaussian_mixture import _estimate_log_gaussian_prob
from sklearn.utils.estimator_checks import parametrize_with_checks

import mixtures as mx
from mixtures.sklearn import BayesianGaussianMixture
from mixtures.priors import ConjugatePrior, DirichletPrior, DirichletProcessPrior, GaussianPrior, Prior

jax.config.update("jax_enable_x64", True)

FAITHFUL = np.asarray(mx.datasets.load_old_faithful(), np.float64)


class _FromResponsibilities(SklearnBayesianGaussianMixture):
    """scikit-learn's VB started from given responsibilities, with the exact E-step for "diag" and "spherical"."""

    def __init__(self, resp=None, **kwargs):
        super().__init__(**kwargs)
        self.resp = resp

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp)

    def _estimate_log_prob(self, X, xp=None):
        if self.covariance_type not in ("diag", "spherical"):
            return super()._estimate_log_prob(X)
        d = X.shape[1]
        nu = self.degrees_of_freedom_
        log_gauss = _estimate_log_gaussian_prob(X, self.means_, self.precisions_cholesky_, self.covariance_type)
        log_gauss = log_gauss - 0.5 * d * np.log(nu)
        if self.covariance_type == "diag":  # a gamma(ν/2, Ψⱼ/2) posterior per feature
            log_lambda = d * (np.log(2.0) + digamma(nu / 2))
        else:  # one gamma(Dν/2, DΨ/2) posterior on the precision
            log_lambda = d * np.log(nu) + d * (digamma(d * nu / 2) - np.log(d * nu / 2))
        return log_gauss + 0.5 * (log_lambda - d / self.mean_precision_)


@pytest.mark.parametrize("weights", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_matches_scikit_learn_from_the_same_responsibilities(covariance, weights):
    x, k, n_updates = FAITHFUL, 4, 60
    resp = np.random.default_rng(0).dirichlet(np.ones(k), size=len(x))
    sk = _FromResponsibilities(
        resp, n_components=k, covariance_type=covariance, weight_concentration_prior_type=weights,
        max_iter=n_updates, tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it did not converge: it ran the updates asked for
        sk.fit(x)
    d = x.shape[1]
    scale, dof = sk.covariance_prior_, sk.degrees_of_freedom_prior_
    # The same priors in GaussianPrior's terms: scikit-learn's spherical prior is per feature, its
    # tied prior counted once per component.
    factor = {"spherical": d, "tied": k}.get(covariance, 1)
    weight_prior = (DirichletProcessPrior if weights == "dirichlet_process" else DirichletPrior)(1.0 / k)
    prior = Prior(GaussianPrior(sk.mean_prior_, sk.mean_precision_prior_, factor * dof, factor * scale), weight_prior)
    result = mx.fit_variational(x, mx.Gaussian(covariance), k, prior=prior, init=resp, max_iter=n_updates, tol=0.0)
    post = result.posterior
    assert int(result.n_iter) == n_updates
    np.testing.assert_allclose(post.components.mean, sk.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(post.components.shrinkage, sk.mean_precision_, rtol=1e-9)
    covariances = np.asarray(result.mixture.params.covariances)
    np.testing.assert_allclose(covariances[0] if covariance == "tied" else covariances, sk.covariances_, rtol=1e-9)
    if weights == "dirichlet_process":
        np.testing.assert_allclose(post.weights.a, sk.weight_concentration_[0], rtol=1e-9)
        np.testing.assert_allclose(post.weights.b, sk.weight_concentration_[1], rtol=1e-9)
    else:
        np.testing.assert_allclose(post.weights.concentration, sk.weight_concentration_, rtol=1e-9)
    np.testing.assert_allclose(result.mixture.weights, sk.weights_ / np.sum(sk.weights_), rtol=1e-9)
    history = np.asarray(result.history)
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))


def _one_component(x, family, prior):
    """A K = 1 fit: the posterior is exact after one update and the ELBO is the log evidence."""
    return mx.fit_variational(
        x, family, 1, prior=Prior(prior, DirichletPrior(1.0)), init=np.ones((len(x), 1)), max_iter=3, tol=0.0
    )


def _normal_wishart_evidence(x, m0, beta0, nu0, psi0):
    """log p(X) under μ | Λ ~ N(m₀, (β₀Λ)⁻¹), Λ ~ Wishart(ν₀, Ψ₀⁻¹) (Murphy 2007, eq. 266)."""
    n, d = x.shape
    mean = x.mean(0)
    scatter = (x - mean).T @ (x - mean)
    beta, nu = beta0 + n, nu0 + n
    psi = psi0 + scatter + beta0 * n / beta * np.outer(mean - m0, mean - m0)
    return (
        -0.5 * n * d * np.log(np.pi) + multigammaln(nu / 2, d) - multigammaln(nu0 / 2, d)
        + 0.5 * nu0 * np.linalg.slogdet(psi0)[1] - 0.5 * nu * np.linalg.slogdet(psi)[1] + 0.5 * d * np.log(beta0 / beta)
    )


def _spherical_evidence_by_quadrature(x, m0, beta0, nu0, psi0):
    """log ∫ N(vec X | m₀, (I + 11ᵀ/β₀) ⊗ I / λ) gamma(λ | ν₀/2, Ψ₀/2) dλ, by quadrature (μ integrated out exactly)."""
    n, d = x.shape
    cov_rows = np.eye(n) + np.ones((n, n)) / beta0

    def log_integrand(lam):
        per_feature = [scipy.stats.multivariate_normal(np.full(n, m0[j]), cov_rows / lam).logpdf(x[:, j]) for j in range(d)]
        return sum(per_feature) + scipy.stats.gamma(nu0 / 2, scale=2 / psi0).logpdf(lam)

    grid = np.linspace(1e-4, 5.0, 4001)
    peak = max(log_integrand(lam) for lam in grid[::200])
    value, _ = scipy.integrate.quad(lambda lam: np.exp(log_integrand(lam) - peak), 1e-9, 50.0, limit=400)
    return peak + np.log(value)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    return rng.normal(size=(7, 2)) @ np.array([[1.0, 0.4], [0.0, 0.8]]) + np.array([1.0, -2.0])


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_one_component_elbo_is_the_log_evidence(small, covariance):
    x = small
    m0, beta0 = np.array([0.5, -1.0]), 0.7
    if covariance == "full":
        nu0, psi0 = 3.5, np.array([[1.5, 0.2], [0.2, 0.9]])
        expected = _normal_wishart_evidence(x, m0, beta0, nu0, psi0)
    elif covariance == "diag":
        nu0, psi0 = 2.5, np.array([1.5, 0.9])
        expected = sum(_normal_wishart_evidence(x[:, [j]], m0[[j]], beta0, nu0, psi0[[j]][:, None]) for j in range(2))
    else:
        nu0, psi0 = 2.5, 1.3
        expected = _spherical_evidence_by_quadrature(x, m0, beta0, nu0, psi0)
    result = _one_component(x, mx.Gaussian(covariance, reg_covar=0.0), GaussianPrior(m0, beta0, nu0, psi0))
    np.testing.assert_allclose(float(result.elbo) * len(x), expected, rtol=1e-7 if covariance == "spherical" else 1e-11)
    # From the first update on, the posterior is exact and stays put.
    np.testing.assert_allclose(np.asarray(result.history)[1:] * len(x), expected, rtol=1e-7 if covariance == "spherical" else 1e-11)


def test_one_component_predictive_is_student_t(small):
    x, family = small, mx.Gaussian("full", reg_covar=0.0)
    m0, beta0, nu0, psi0 = np.zeros(2), 0.5, 4.0, np.eye(2)
    post = _one_component(x, family, GaussianPrior(m0, beta0, nu0, psi0)).posterior
    n, d = x.shape
    beta, nu = beta0 + n, nu0 + n
    mean = (beta0 * m0 + x.sum(0)) / beta
    xbar = x.mean(0)
    psi = psi0 + (x - xbar).T @ (x - xbar) + beta0 * n / beta * np.outer(xbar - m0, xbar - m0)
    df = nu - d + 1
    t = scipy.stats.multivariate_t(loc=mean, shape=psi * (beta + 1) / (beta * df), df=df)
    points = np.array([[0.0, 0.0], [2.0, -3.0], [10.0, 4.0]])
    np.testing.assert_allclose(post.log_prob(points), t.logpdf(points), rtol=1e-10)
    diag = _one_component(x, mx.Gaussian("diag", reg_covar=0.0), GaussianPrior(m0, beta0, nu0, np.ones(2))).posterior
    expected = 0.0
    for j in range(2):
        psi_j = 1.0 + np.sum((x[:, j] - xbar[j]) ** 2) + beta0 * n / beta * (xbar[j] - m0[j]) ** 2
        expected = expected + scipy.stats.t(df=nu, loc=mean[j], scale=np.sqrt(psi_j * (beta + 1) / (beta * nu))).logpdf(points[:, j])
    np.testing.assert_allclose(diag.log_prob(points), expected, rtol=1e-10)


def _counts():
    rng = np.random.default_rng(5)
    return rng.poisson([2.0, 7.0, 0.5], size=(40, 3)).astype(np.float64)


def test_one_component_poisson_bernoulli_exponential_categorical():
    counts = _counts()
    a, m0 = 1.5, np.array([1.0, 4.0, 2.0])
    result = _one_component(counts, mx.Poisson(), ConjugatePrior(a, m0))
    shape, rate, n = a * m0, a, len(counts)
    s = counts.sum(0)
    expected = np.sum(shape * np.log(rate) - gammaln(shape) + gammaln(shape + s) - (shape + s) * np.log(rate + n))
    expected -= np.sum(gammaln(counts + 1))
    np.testing.assert_allclose(float(result.elbo) * n, expected, rtol=1e-11)
    np.testing.assert_allclose(result.posterior.components.mean[0], (shape + s) / (rate + n), rtol=1e-12)
    predictive = result.posterior.log_prob(np.array([[0.0, 3.0, 1.0]]))
    post_shape, post_rate = shape + s, rate + n
    nb = scipy.stats.nbinom(post_shape, post_rate / (post_rate + 1)).logpmf(np.array([0.0, 3.0, 1.0]))
    np.testing.assert_allclose(predictive, [np.sum(nb)], rtol=1e-11)

    bits = (counts > 1).astype(np.float64)
    a, m0 = 2.0, np.array([0.3, 0.6, 0.5])
    result = _one_component(bits, mx.Bernoulli(), ConjugatePrior(a, m0))
    s = bits.sum(0)
    expected = np.sum(betaln(a * m0 + s, a * (1 - m0) + n - s) - betaln(a * m0, a * (1 - m0)))
    np.testing.assert_allclose(float(result.elbo) * n, expected, rtol=1e-11)

    times = counts + 0.25
    a, m0 = 2.0, np.array([1.0, 2.0, 0.5])
    result = _one_component(times, mx.Exponential(), ConjugatePrior(a, m0))
    shape, rate, s = a + 1, a * m0, times.sum(0)  # a gamma(a + 1, a μ₀) prior on each rate
    expected = np.sum(shape * np.log(rate) - gammaln(shape) + gammaln(shape + n) - (shape + n) * np.log(rate + s))
    np.testing.assert_allclose(float(result.elbo) * n, expected, rtol=1e-11)

    codes = np.minimum(counts[:, :2], 2.0)
    family = mx.Categorical((3, 3))
    alpha = np.array([[1.0, 0.5, 2.0], [0.7, 0.7, 0.7]])
    a = alpha.sum(1)[0]
    tau = np.concatenate([alpha[0, 1:], alpha[1, 1:] * a / alpha[1].sum()])
    alpha[1] *= a / alpha[1].sum()
    result = _one_component(codes, family, ConjugatePrior(a, tau / a))
    expected = 0.0
    for j in range(2):
        c = np.bincount(codes[:, j].astype(int), minlength=3)
        expected += np.sum(gammaln(alpha[j] + c)) - gammaln(np.sum(alpha[j] + c)) - np.sum(gammaln(alpha[j])) + gammaln(np.sum(alpha[j]))
    np.testing.assert_allclose(float(result.elbo) * n, expected, rtol=1e-11)


def test_one_component_product_family_adds_its_parts():
    counts = _counts()
    bits = (counts[:, :1] > 1).astype(np.float64)
    x = np.concatenate([counts[:, 1:], bits], axis=1)
    poisson, bernoulli = ConjugatePrior(1.0, np.array([5.0, 1.0])), ConjugatePrior(2.0, np.array([0.5]))
    family = mx.Independent(((mx.Poisson(), (0, 1)), (mx.Bernoulli(), (2,))))
    whole = _one_component(x, family, (poisson, bernoulli))
    parts = _one_component(x[:, :2], mx.Poisson(), poisson).elbo + _one_component(x[:, 2:], mx.Bernoulli(), bernoulli).elbo
    np.testing.assert_allclose(whole.elbo, parts, rtol=1e-12)


def _blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]])
    z = rng.integers(0, 3, n)
    return centres[z] + rng.normal(size=(n, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]])


FAMILIES = {
    "full": (mx.Gaussian("full"), "real"),
    "tied": (mx.Gaussian("tied"), "real"),
    "diag": (mx.Gaussian("diag"), "real"),
    "spherical": (mx.Gaussian("spherical"), "real"),
    "EEI": (mx.Gaussian("EEI"), "real"),
    "EII": (mx.Gaussian("EII"), "real"),
    "identity": (mx.Gaussian("identity"), "real"),
    "poisson": (mx.Poisson(), "counts"),
    "bernoulli": (mx.Bernoulli(), "bits"),
    "categorical": (mx.Categorical((3, 3)), "codes"),
    "product": (mx.Independent(((mx.Poisson(), (0, 1)), (mx.Bernoulli(), (2,)))), "mixed"),
}


def _data_for(kind):
    x = _blobs()
    if kind == "real":
        return x
    counts = np.floor(np.abs(x) * 1.5)
    if kind == "counts":
        return counts
    if kind == "bits":
        return (x > 1.5).astype(np.float64)
    if kind == "codes":
        return np.clip(np.floor(x / 3 + 1), 0, 2)
    return np.concatenate([counts, (x[:, :1] > 1.5).astype(np.float64)], axis=1)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_elbo_never_decreases_and_unneeded_components_empty(name):
    family, kind = FAMILIES[name]
    x = _data_for(kind)
    result = mx.fit_variational(x, family, 6, key=jax.random.key(1), max_iter=60, tol=0.0)
    history = np.asarray(result.history)
    assert np.all(np.isfinite(history)) and len(history) == 60
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:])), np.diff(history).min()
    counts = np.asarray(result.counts)
    np.testing.assert_allclose(counts.sum(), len(x), rtol=1e-10)
    assert np.isfinite(float(result.elbo)) and float(result.elbo) >= history[-1] - 1e-10 * abs(history[-1])
    assert int(result.n_effective) == int(np.sum(counts >= 1.0))
    # The default stick-breaking prior leaves some of the six components (nearly) unused.
    assert int(result.n_effective) < 6 or name == "identity"


@pytest.mark.parametrize("name", ["full", "poisson"])
def test_float32_agrees_with_float64(name):
    family, kind = FAMILIES[name]
    x = _data_for(kind)
    resp = np.random.default_rng(2).dirichlet(np.ones(3), size=len(x))
    with jax.enable_x64(False):
        single = mx.fit_variational(x.astype(np.float32), family, 3, init=resp, max_iter=40, tol=0.0)
        single_history = np.asarray(single.history, np.float64)
        assert single.elbo.dtype == np.float32
    double = mx.fit_variational(x, family, 3, init=resp, max_iter=40, tol=0.0)
    np.testing.assert_allclose(single_history, np.asarray(double.history), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(single.counts, np.float64), double.counts, rtol=1e-3, atol=1e-3)


def test_sample_weights_count_as_replicated_rows():
    x = _blobs(60)
    w = np.random.default_rng(4).integers(1, 4, len(x)).astype(np.float64)
    resp = np.random.default_rng(5).dirichlet(np.ones(3), size=len(x))
    prior = Prior(GaussianPrior(np.zeros(2), 1.0, 2.0, np.eye(2)), DirichletProcessPrior(0.5))
    weighted = mx.fit_variational(x, mx.Gaussian("full"), 3, prior=prior, init=resp, sample_weight=w, max_iter=30, tol=0.0)
    rows = np.repeat(np.arange(len(x)), w.astype(int))
    replicated = mx.fit_variational(x[rows], mx.Gaussian("full"), 3, prior=prior, init=resp[rows], max_iter=30, tol=0.0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), weighted.posterior, replicated.posterior)
    np.testing.assert_allclose(weighted.elbo * w.sum(), replicated.elbo * len(rows), rtol=1e-10)


def test_restarts_return_the_best_elbo_and_continue_from_a_posterior():
    x = _blobs()
    result = mx.fit_variational(x, mx.Gaussian("full"), 5, key=jax.random.key(0), n_init=4, max_iter=200)
    assert result.all_elbos.shape == (4,)
    assert float(result.elbo) == float(np.max(result.all_elbos))
    assert int(result.n_effective) == 3
    again = mx.fit_variational(x, mx.Gaussian("full"), 5, init=result.posterior, max_iter=5, tol=0.0)
    assert float(again.history[0]) == pytest.approx(float(result.elbo), rel=1e-12)
    means = np.sort(np.asarray(result.mixture.params.means)[np.asarray(result.counts) >= 1][:, 0])
    np.testing.assert_allclose(means, [0.0, 2.0, 6.0], atol=0.5)
    labels = np.asarray(result.posterior.predict(x))
    np.testing.assert_array_equal(labels, np.argmax(np.asarray(result.posterior.responsibilities(x)), axis=1))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"family": mx.Gaussian("VEV")}, ValueError, "no conjugate posterior"),
        ({"family": mx.StudentT()}, ValueError, "no conjugate posterior"),
        ({"prior": Prior(weights=DirichletPrior(0.0))}, ValueError, "concentration` must be finite and positive"),
        ({"prior": Prior(weights=0.5)}, TypeError, "DirichletProcessPrior"),
        ({"prior": ConjugatePrior(1.0, np.ones(2))}, TypeError, "GaussianPrior"),
        ({"init": np.full((150, 2), 0.5)}, ValueError, "shape"),
        ({"init": "nope"}, ValueError, "`init` must be one of"),
        ({"n_components": 0}, ValueError, "n_components"),
        ({"x": np.full((150, 2), np.nan)}, ValueError, "finite"),
    ],
)
def test_bad_arguments_are_refused_before_compiling(kwargs, error, match):
    arguments = {"x": _blobs(), "family": mx.Gaussian("full"), "n_components": 3, "key": jax.random.key(0)}
    arguments.update(kwargs)
    x, family, k = arguments.pop("x"), arguments.pop("family"), arguments.pop("n_components")
    with pytest.raises(error, match=match):
        mx.fit_variational(x, family, k, **arguments)


def test_an_improper_prior_is_refused_and_the_default_stays_proper():
    bits = np.zeros((20, 2))
    bits[:10, 1] = 1.0  # feature 0 never 1: its average is at the edge
    with pytest.raises(ValueError, match="improper"):
        mx.fit_variational(bits, mx.Bernoulli(), 2, key=jax.random.key(0), prior=Prior(ConjugatePrior(1.0, np.array([0.0, 0.5]))))
    result = mx.fit_variational(bits, mx.Bernoulli(), 2, key=jax.random.key(0))
    assert np.isfinite(float(result.elbo))


# -- the scikit-learn estimator ------------------------------------------------------


@parametrize_with_checks(
    [BayesianGaussianMixture(n_components=2, max_iter=5), BayesianGaussianMixture(
        n_components=2, covariance_type="diag", weight_concentration_prior_type="dirichlet_distribution", max_iter=5)]
)
def test_the_estimator_passes_scikit_learns_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("covariance", ["full", "tied"])
def test_the_estimators_methods_are_scikit_learns_at_the_same_posterior(covariance):
    x = FAITHFUL
    ours = BayesianGaussianMixture(n_components=4, covariance_type=covariance, random_state=0, max_iter=300).fit(x)
    assert ours.converged_
    sk = SklearnBayesianGaussianMixture(n_components=4, covariance_type=covariance)
    sk._check_parameters(x)
    sk._set_parameters(
        (ours.weight_concentration_, ours.mean_precision_, ours.means_, ours.degrees_of_freedom_, ours.covariances_,
         ours.precisions_cholesky_)
    )
    sk.n_features_in_ = 2
    np.testing.assert_allclose(ours.weights_, sk.weights_ / np.sum(sk.weights_), rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(x), sk.predict_proba(x), atol=1e-10)
    # "tied": the shared precision's exact degrees of freedom shift every row by one constant.
    shift = ours.score_samples(x) - sk.score_samples(x)
    np.testing.assert_allclose(shift, shift[0] if covariance == "tied" else 0.0, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(x), sk.predict(x))
    np.testing.assert_allclose(ours.precisions_, np.linalg.inv(ours.covariances_), rtol=1e-10)
    # The ELBO never decreased, and lower_bound_ is the ELBO after the last update.
    bounds = np.asarray(ours.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[1:]))
    assert ours.lower_bound_ >= bounds[-1] - 1e-9 * abs(bounds[-1])
    samples, labels = ours.sample(50)
    assert samples.shape == (50, 2) and np.all(np.diff(labels) >= 0)


def test_the_estimator_continues_with_warm_start_and_checks_its_priors():
    x = FAITHFUL
    first = BayesianGaussianMixture(n_components=3, max_iter=3, random_state=0, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        first.fit(x)
    before = first.lower_bound_
    first.set_params(max_iter=200)
    first.fit(x)
    assert first.lower_bounds_[0] == pytest.approx(before, rel=1e-12)
    with pytest.raises(ValueError, match="degrees_of_freedom_prior"):
        BayesianGaussianMixture(degrees_of_freedom_prior=0.5).fit(x)
    with pytest.raises(ValueError, match="weight_concentration_prior_type"):
        BayesianGaussianMixture(weight_concentration_prior_type="beta").fit(x)
    with pytest.raises(ValueError, match="covariance_prior"):
        BayesianGaussianMixture(covariance_type="full", covariance_prior=-np.eye(2)).fit(x)


# -- a family of one's own, and data read in batches ----------------------------------

from tests.families import RayleighForm  # noqa: E402


class ConjugateRayleigh(RayleighForm):
    """The Rayleigh family of docs/custom-family.md, with its conjugate prior's normaliser stated."""

    def log_conjugate_normalizer(self, tau, nu):
        # ∫_{η<0} exp(τη + ν log(−2η)) dη = 2^ν Γ(ν + 1) / τ^(ν + 1), per feature
        return jax.numpy.sum(nu * np.log(2.0) + jax.scipy.special.gammaln(nu + 1.0) - (nu + 1.0) * jax.numpy.log(tau))


def test_a_users_family_gets_variational_bayes_from_its_normaliser():
    family = ConjugateRayleigh()
    assert family.conjugate and not RayleighForm().conjugate
    rng = np.random.default_rng(8)
    x = rng.rayleigh(1.5, size=(30, 1))
    a, m0 = 2.0, np.array([3.0])
    result = _one_component(x, family, ConjugatePrior(a, m0))

    def log_integrand(u, tau, nu, data):  # u = −η > 0
        return np.sum(np.log(data)) + np.sum(-u * data**2 + np.log(2 * u)) - tau * u + nu * np.log(2 * u)

    def log_integral(tau, nu, data):
        peak = scipy.optimize.minimize_scalar(lambda u: -log_integrand(u, tau, nu, data), bounds=(1e-8, 50.0), method="bounded")
        top = -peak.fun
        value, _ = scipy.integrate.quad(lambda u: np.exp(log_integrand(u, tau, nu, data) - top), 0.0, np.inf, limit=400)
        return top + np.log(value)

    evidence = log_integral(a * m0[0], a, x[:, 0]) - log_integral(a * m0[0], a, x[:0, 0])
    np.testing.assert_allclose(float(result.elbo) * len(x), evidence, rtol=1e-8)
    fitted = mx.fit_variational(np.concatenate([x, 4 * x]), family, 4, key=jax.random.key(0), max_iter=40, tol=0.0)
    assert np.all(np.diff(np.asarray(fitted.history)) >= -1e-10 * np.abs(np.asarray(fitted.history)[1:]))


def test_batches_give_the_in_memory_fit():
    x = _blobs()
    start = mx.fit_variational(x, mx.Gaussian("full"), 4, key=jax.random.key(1), max_iter=2, tol=0.0).posterior
    in_memory = mx.fit_variational(x, mx.Gaussian("full"), 4, init=start, max_iter=25, tol=0.0)
    batches = [x[i : i + 40] for i in range(0, len(x), 40)]
    seen = []
    streamed = mx.fit_variational_stream(batches, mx.Gaussian("full"), 4, key=None, init=start, max_iter=25, tol=0.0,
                                         callback=seen.append)
    np.testing.assert_allclose(streamed.history, in_memory.history, rtol=1e-12)
    np.testing.assert_allclose(streamed.elbo, in_memory.elbo, rtol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), streamed.posterior, in_memory.posterior)
    assert [p.iteration for p in seen] == list(range(1, 26))
    fresh = mx.fit_variational_stream(x, mx.Gaussian("full"), 6, key=jax.random.key(0), batch_size=64, n_init=2)
    assert fresh.all_elbos.shape == (2,) and int(fresh.n_effective) == 3
    with pytest.raises(ValueError, match="no conjugate posterior"):
        mx.fit_variational_stream(x, mx.Gaussian("VEV"), 2, key=jax.random.key(0))


@pytest.mark.parametrize("weights", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("covariance", ["full", "tied"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_elbo_is_scikit_learns_lower_bound_plus_a_constant(covariance, weights):
    """scikit-learn's lower bound drops terms that depend only on N, D, K and the prior.

    At scikit-learn's converged posterior, our ELBO minus its lower bound is
    then one number on every data set of the same size under the same prior
    (without reg_covar, which scikit-learn's simplification does not carry).
    """
    from mixtures import engine
    from mixtures._src.core.variational import StickBreaking, VariationalMixture
    from mixtures._src.engine import variational as vb

    k, d = 3, 2
    m0, c0 = FAITHFUL.mean(0), np.cov(FAITHFUL.T)
    factor = k if covariance == "tied" else 1
    weight_prior = (DirichletProcessPrior if weights == "dirichlet_process" else DirichletPrior)(0.3)
    prior = jax.tree.map(jax.numpy.asarray, Prior(GaussianPrior(m0, 0.5, 3.0 * factor, factor * c0), weight_prior))
    family = mx.Gaussian(covariance, reg_covar=0.0)
    gaps = []
    for seed in range(3):
        x = FAITHFUL + np.random.default_rng(seed).normal(size=FAITHFUL.shape) * 0.3 * seed
        sk = SklearnBayesianGaussianMixture(
            n_components=k, covariance_type=covariance, weight_concentration_prior_type=weights, max_iter=600,
            tol=1e-10, random_state=0, reg_covar=0.0, mean_prior=m0, covariance_prior=c0, degrees_of_freedom_prior=3.0,
            mean_precision_prior=0.5, weight_concentration_prior=0.3,
        ).fit(x)
        q_weights = StickBreaking(*sk.weight_concentration_) if weights == "dirichlet_process" else DirichletPrior(
            sk.weight_concentration_)
        dof = np.broadcast_to(sk.degrees_of_freedom_ * factor, (k,))
        covariances = np.broadcast_to(sk.covariances_, (k, d, d))
        posterior = VariationalMixture(
            q_weights, GaussianPrior(sk.means_, sk.mean_precision_, dof, covariances * dof[:, None, None]), family
        )
        _, _, elbo = vb.elbo_sums(posterior, engine.Rows(jax.numpy.asarray(x)), engine.EMOptions(chunk_size=512), prior)
        gaps.append(float(elbo) - float(np.ravel(sk.lower_bound_)[0]))
    np.testing.assert_allclose(gaps, gaps[0], rtol=0, atol=1e-7)


def test_another_max_iter_or_tol_compiles_nothing():
    from tests.helpers import recording_compilations

    x = _blobs()
    mx.fit_variational(x, mx.Gaussian("diag"), 3, key=jax.random.key(0), max_iter=7, tol=1e-3)
    with recording_compilations() as compiled:
        again = mx.fit_variational(x, mx.Gaussian("diag"), 3, key=jax.random.key(1), max_iter=40, tol=0.0)
    assert compiled == [] and int(again.n_iter) == 40


def test_a_feature_that_never_varies_stays_finite():
    rng = np.random.default_rng(9)
    bits = (rng.random((300, 3)) < 0.5).astype(np.float64)
    bits[:, 1] = 0.0  # never 1
    counts = rng.poisson(3.0, size=(300, 2)).astype(np.float64)
    counts[:, 0] = 0.0  # never above 0
    for x, family, edge in ((bits, mx.Bernoulli(), np.array([0.5, 0.005, 0.5])), (counts, mx.Poisson(), np.array([0.002, 3.0]))):
        for prior in (None, Prior(ConjugatePrior(1.0, edge))):
            for dtype, x64 in ((np.float32, False), (np.float64, True)):
                with jax.enable_x64(x64):
                    result = mx.fit_variational(x.astype(dtype), family, 2, key=jax.random.key(0), prior=prior, max_iter=30)
                    assert np.all(np.isfinite(np.asarray(result.history, np.float64))), (family, prior, dtype)
                    assert np.isfinite(float(result.elbo)) and np.all(np.isfinite(np.asarray(result.posterior.log_prob(x[:5]))))


def test_continuing_checks_the_posterior_against_the_data_and_prior():
    x = _blobs()
    dirichlet = Prior(weights=DirichletPrior(1.0))
    post = mx.fit_variational(x, mx.Gaussian("full"), 3, key=jax.random.key(0), prior=dirichlet, max_iter=3).posterior
    with pytest.raises(ValueError, match="Dirichlet weights but the weight prior is stick-breaking"):
        mx.fit_variational(x, mx.Gaussian("full"), 3, init=post)
    with pytest.raises(ValueError, match="does not fit this data"):
        mx.fit_variational(np.concatenate([x, x[:, :1]], axis=1), mx.Gaussian("full"), 3, init=post, prior=dirichlet)
    with pytest.raises(ValueError, match="stick-breaking"):
        mx.fit_variational_stream([x], mx.Gaussian("full"), 3, key=None, init=post)
    again = mx.fit_variational(x, mx.Gaussian("full"), 3, init=post, prior=DirichletPrior(1.0), max_iter=2)
    assert int(again.n_iter) == 2
    # A product family's prior may leave some groups to their defaults.
    family = mx.Independent(((mx.Poisson(), (0, 1)), (mx.Bernoulli(), (2,))))
    data = _data_for("mixed")
    mixed = mx.fit_variational(data, family, 2, key=jax.random.key(0), prior=("default", ConjugatePrior(2.0, np.array([0.4]))))
    assert np.isfinite(float(mixed.elbo)) and float(mixed.posterior.components[1].pseudo_count[0]) >= 2.0
    with pytest.raises(ValueError, match="variational Bayes takes no missing entries"):
        mx.fit_variational(np.where(x > 5, np.nan, x), mx.Gaussian("full"), 3, key=jax.random.key(0))
    assert mx.priors.DirichletProcessPrior is mx.DirichletProcessPrior
