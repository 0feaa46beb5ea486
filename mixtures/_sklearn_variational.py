"""``mixtures.sklearn.BayesianGaussianMixture``: scikit-learn's variational Gaussian mixture on :func:`mixtures.fit_variational`.

Imported by :mod:`mixtures.sklearn`, which re-exports it; see there for
scikit-learn's import and the precision rules (float64 input computes in
float64, float32 in float32, whatever JAX's global x64 flag says).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from mixtures._src.core import checks
from mixtures._src.core.priors import DirichletPrior, DirichletProcessPrior, Prior
from mixtures._src.core.variational import StickBreaking, VariationalMixture
from mixtures._src.families.gaussian.family import Gaussian
from mixtures._src.families.gaussian.prior import GaussianPrior
from mixtures._src.families.gaussian.variational import data_moments
from mixtures._src.fitting.variational import fit_variational

__all__ = ["BayesianGaussianMixture"]

WEIGHT_PRIORS = ("dirichlet_process", "dirichlet_distribution")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture: ``sklearn.mixture.BayesianGaussianMixture``'s interface.

    The arguments, fitted attributes and methods are scikit-learn's. From the
    same initial responsibilities, "full" and "tied" give scikit-learn's
    parameters to about 1e-12 in float64. "diag" and "spherical" differ:
    their precisions have independent gamma posteriors, whose expected log
    is ψ(ν/2) − log(Ψ/2) per gamma, where scikit-learn uses the expression of
    a D-dimensional Wishart; this estimator uses the exact one (the
    difference in the responsibilities is of order D²/ν). For "tied", the
    one precision's posterior has ν₀ + N degrees of freedom where
    scikit-learn counts ν₀ + N/K: the responsibilities agree, and
    ``score_samples`` differs by a constant. The lower bound is
    the whole ELBO (every constant kept), so ``lower_bound_`` differs from
    scikit-learn's by a constant; its changes are the same.

    Other differences: ``fit`` takes ``sample_weight`` (counted as repeated
    rows); the restarts run side by side in one compiled program; "kmeans"
    and "k-means++" initialise with the library's own K-means, and the first
    posterior is the update from that start's hard assignments.

    Args:
      n_components: K, the most components.
      covariance_type: "full", "tied", "diag" or "spherical".
      tol: a restart stops when the lower bound (a total over the rows)
        changes by less than this.
      reg_covar: non-negative number added to each component's covariance
        diagonal, as scikit-learn does.
      max_iter: the most updates per restart.
      n_init: number of restarts; the highest final lower bound is kept.
      init_params: "kmeans", "k-means++", "random" or "random_from_data".
      weight_concentration_prior_type: "dirichlet_process" (stick-breaking)
        or "dirichlet_distribution".
      weight_concentration_prior: γ or α > 0; None for 1 / K.
      mean_precision_prior: κ₀ > 0; None for 1.
      mean_prior: (n_features,) μ₀; None for the data's mean.
      degrees_of_freedom_prior: ν₀ > n_features − 1; None for n_features.
      covariance_prior: the prior on the covariance: (D, D) for "full" and
        "tied", (D,) for "diag", a number for "spherical"; None for the
        data's covariance, variances, or mean variance (with ``reg_covar``
        added to the diagonal where the covariance is singular: the prior
        must be proper for the lower bound to be finite).
      random_state: None, an int or a ``numpy.random.RandomState``.
      warm_start: if True, a later fit continues from the fitted posterior.
      verbose: 0 silent, 1 prints restarts and iterations, 2 adds times.
      verbose_interval: updates between progress lines.

    Attributes:
      weights_: (K,) the posterior mean weights.
      means_: (K, D) the posterior means mₖ.
      covariances_: Ψₖ / νₖ, the inverse of the expected precision, in
        scikit-learn's layout ((K, D, D), (D, D), (K, D) or (K,)).
      precisions_: their inverses.
      precisions_cholesky_: upper-triangular U with precision = U Uᵀ.
      weight_concentration_: (K,) Dirichlet concentrations, or the pair
        ((K,), (K,)) of beta parameters of the sticks.
      mean_precision_: (K,) βₖ.
      degrees_of_freedom_: (K,) νₖ (scikit-learn's convention for "tied"
        and "spherical").
      weight_concentration_prior_: γ or α used.
      mean_precision_prior_: κ₀ used.
      mean_prior_: μ₀ used.
      degrees_of_freedom_prior_: ν₀ used.
      covariance_prior_: the covariance prior used.
      converged_: whether the kept restart converged.
      n_iter_: its number of updates.
      lower_bound_: its final lower bound (a total over the rows).
      lower_bounds_: the lower bound before each update, a list.
      n_features_in_: number of features seen in fit.
      posterior_: the fitted :class:`~mixtures.VariationalMixture`.

    Example:
      >>> import mixtures as mx
      >>> from mixtures.sklearn import BayesianGaussianMixture
      >>> x = mx.datasets.load_old_faithful()
      >>> bgm = BayesianGaussianMixture(n_components=6, n_init=4, max_iter=500, random_state=0).fit(x)
      >>> int((bgm.weights_ > 0.01).sum()), bgm.means_.shape
      (2, (6, 2))
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- fitting ------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Fits the variational posterior; returns self.

        Args:
          X: (n_samples, n_features) array-like.
          y: ignored.
          sample_weight: optional (n_samples,) non-negative row weights.
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fits as :meth:`fit` does, then returns :meth:`predict` of ``X``."""
        X = self._fit(X, sample_weight)
        return self._predict(X)

    def _fit(self, X, sample_weight):
        self._check_params()
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        X = _sk._validate(self, X, False, reset=not warm, ensure_min_samples=2)
        n, d = X.shape
        k = int(self.n_components)
        if k > n:
            raise ValueError(f"`n_components` ({k}) must be at most the number of samples in X ({n}).")
        weights = checks.as_sample_weight(sample_weight, n)
        weights = None if weights is None else np.asarray(weights, np.float64)
        family = Gaussian(self.covariance_type, reg_covar=float(self.reg_covar))
        prior, factor = self._prior(X, weights, k, d)
        total = float(n if weights is None else np.sum(weights))
        printer = _sk._Printer(self.verbose, self.verbose_interval, self.tol) if self.verbose else None
        with jax.enable_x64(True):
            if warm:
                init, key, n_init = self._posterior(), None, 1
            else:
                init, key, n_init = _sk.INIT_PARAMS[self.init_params], _sk._random_key(self.random_state), int(self.n_init)
            if printer is not None:
                printer.begin(range(n_init), labelled=n_init > 1)
            result = fit_variational(
                X, family, k, key=key, prior=prior, init=init, n_init=n_init, max_iter=max(int(self.max_iter), 1),
                tol=float(self.tol) / total, sample_weight=weights,
                callback=None if printer is None else (lambda p: printer(p._replace(log_likelihood=p.log_likelihood * total))),
            )
            if printer is not None:
                printer.end()
            self._store(result.posterior, factor)
            self.n_iter_ = int(result.n_iter)
            self.converged_ = bool(result.converged)
            self.lower_bounds_ = [float(v) * total for v in np.asarray(result.history)]
            self.lower_bound_ = float(result.elbo) * total
        if not self.converged_:
            warnings.warn(
                f"The best restart did not converge within max_iter={self.max_iter} updates (tol={self.tol}): "
                "increase max_iter or tol, or try other init parameters.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return X

    def _prior(self, X, weights, k: int, d: int):
        """The Prior in GaussianPrior's terms, the *_prior_ attributes, and the tied/spherical factor."""
        mean, cov = data_moments(X, weights, float(self.reg_covar))
        self.weight_concentration_prior_ = (
            1.0 / k if self.weight_concentration_prior is None else _positive(self.weight_concentration_prior, "weight_concentration_prior")
        )
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else _positive(self.mean_precision_prior, "mean_precision_prior")
        )
        self.mean_prior_ = mean if self.mean_prior is None else _sk._array(self.mean_prior, "mean_prior", (d,))
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(d)
        else:
            dof = _positive(self.degrees_of_freedom_prior, "degrees_of_freedom_prior", low=d - 1.0)
            self.degrees_of_freedom_prior_ = dof
        cov_type = self.covariance_type
        if self.covariance_prior is None:
            scale = {"full": cov, "tied": cov, "diag": np.diagonal(cov).copy(), "spherical": float(np.mean(np.diagonal(cov)))}[cov_type]
        elif cov_type in ("full", "tied"):
            scale = _sk._array(self.covariance_prior, "covariance_prior", (d, d))
            if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(scale) <= 0):
                raise ValueError("`covariance_prior` must be symmetric and positive definite.")
        elif cov_type == "diag":
            scale = _sk._array(self.covariance_prior, "covariance_prior", (d,))
            if np.any(scale <= 0):
                raise ValueError("`covariance_prior` must be positive.")
        else:
            scale = _positive(self.covariance_prior, "covariance_prior")
        self.covariance_prior_ = scale
        # scikit-learn's spherical prior is per feature, its tied prior counted once per component.
        factor = {"spherical": d, "tied": k}.get(cov_type, 1)
        weight_type = DirichletProcessPrior if self.weight_concentration_prior_type == "dirichlet_process" else DirichletPrior
        prior = Prior(
            GaussianPrior(self.mean_prior_, self.mean_precision_prior_, factor * self.degrees_of_freedom_prior_, factor * np.asarray(scale)),
            weight_type(self.weight_concentration_prior_),
        )
        return prior, factor

    def _store(self, posterior: VariationalMixture, factor: int) -> None:
        post = jax.tree.map(np.asarray, posterior)
        comp = post.components
        if isinstance(post.weights, StickBreaking):
            self.weight_concentration_ = (post.weights.a, post.weights.b)
        else:
            self.weight_concentration_ = post.weights.concentration
        self.weights_ = np.asarray(posterior.mixture.weights)
        self.means_ = comp.mean
        self.mean_precision_ = comp.shrinkage
        self.degrees_of_freedom_ = comp.dof / factor
        dof = comp.dof.reshape(comp.dof.shape + (1,) * (comp.scale.ndim - 1))
        cov = comp.scale / dof
        if self.covariance_type == "tied":
            cov, self.degrees_of_freedom_ = cov[0], float(comp.dof[0] / factor)
        self.covariances_ = cov
        if self.covariance_type in ("full", "tied"):
            eye = np.broadcast_to(np.eye(cov.shape[-1]), cov.shape)
            # U = L⁻ᵀ with L Lᵀ the covariance: U Uᵀ is the precision, as scikit-learn keeps it.
            self.precisions_cholesky_ = np.swapaxes(np.linalg.solve(np.linalg.cholesky(cov), eye), -1, -2)
            self.precisions_ = np.linalg.inv(cov)
        else:
            self.precisions_ = 1.0 / cov
            self.precisions_cholesky_ = 1.0 / np.sqrt(cov)
        self._components = comp
        self._weights = post.weights

    def _posterior(self) -> VariationalMixture:
        """The fitted posterior as JAX arrays, in the current x64 mode and the fit's dtype."""
        dtype = self.means_.dtype if jax.config.jax_enable_x64 else np.float32
        convert = lambda a: jnp.asarray(a, dtype)  # noqa: E731
        family = Gaussian(self.covariance_type, reg_covar=float(self.reg_covar))
        return VariationalMixture(jax.tree.map(convert, self._weights), jax.tree.map(convert, self._components), family)

    @property
    def posterior_(self) -> VariationalMixture:
        """The fitted :class:`~mixtures.VariationalMixture`, built in JAX's current precision."""
        check_is_fitted(self)
        return self._posterior()

    # -- using the fit --------------------------------------------------------------

    def _check_X(self, X):
        check_is_fitted(self)
        return _sk._validate(self, X, False, reset=False)

    def _predict(self, X):
        with jax.enable_x64(True):
            return np.asarray(self._posterior().predict(X), dtype=np.int64)

    def predict(self, X):
        """The most probable component of each row under the variational posterior, (n_samples,) int64."""
        return self._predict(self._check_X(X))

    def predict_proba(self, X):
        """The variational responsibilities q(zₙ = k), (n_samples, n_components)."""
        X = self._check_X(X)
        with jax.enable_x64(True):
            return np.asarray(self._posterior().responsibilities(X))

    def score_samples(self, X):
        """log Σₖ exp(E_q[log πₖ] + E_q[log p(xₙ | θₖ)]) of each row, as scikit-learn's; (n_samples,)."""
        X = self._check_X(X)
        with jax.enable_x64(True):
            posterior = self._posterior()
            return np.asarray(posterior.expected().log_prob(X) + posterior.log_normalizer())

    def score(self, X, y=None, sample_weight=None):
        """The (weighted) mean of :meth:`score_samples`."""
        values = self.score_samples(X)
        weights = checks.as_sample_weight(sample_weight, values.shape[0])
        return float(np.average(values, weights=weights))

    def sample(self, n_samples=1):
        """Draws from the mixture at the posterior mean (``weights_``, ``means_``, ``covariances_``), grouped by component."""
        check_is_fitted(self)
        n = checks.positive_int(n_samples, "n_samples")
        key = _sk._random_key(self.random_state)
        with jax.enable_x64(True):
            x, z = self._posterior().mixture.sample(n, key=key)
            x, z = np.asarray(x), np.asarray(z, dtype=np.int64)
        order = np.argsort(z, kind="stable")
        return x[order], z[order]

    # -- validation ---------------------------------------------------------------------

    def _check_params(self) -> None:
        _sk._integer(self.n_components, "n_components", 1)
        _sk._real(self.tol, "tol")
        _sk._real(self.reg_covar, "reg_covar")
        _sk._integer(self.max_iter, "max_iter", 1)
        _sk._integer(self.n_init, "n_init", 1)
        if not isinstance(self.covariance_type, str) or self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"`covariance_type` must be one of {COVARIANCE_TYPES}; received {self.covariance_type!r}.")
        inits = tuple(name for name in _sk.INIT_PARAMS if name != "hc")
        if not isinstance(self.init_params, str) or self.init_params not in inits:
            raise ValueError(f"`init_params` must be one of {inits}; received {self.init_params!r}.")
        if self.weight_concentration_prior_type not in WEIGHT_PRIORS:
            raise ValueError(
                f"`weight_concentration_prior_type` must be one of {WEIGHT_PRIORS}; "
                f"received {self.weight_concentration_prior_type!r}."
            )
        rs = self.random_state
        if not (rs is None or isinstance(rs, (int, np.integer, np.random.RandomState))) or isinstance(rs, bool):
            raise TypeError(f"`random_state` must be None, an integer or a numpy.random.RandomState; received {rs!r}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"`warm_start` must be True or False; received {self.warm_start!r}.")
        _sk._integer(self.verbose, "verbose", 0, allow_bool=True)
        _sk._integer(self.verbose_interval, "verbose_interval", 1)


def _positive(value, name: str, low: float = 0.0) -> float:
    number = _sk._real(value, name)
    if not number > low:
        raise ValueError(f"`{name}` must be greater than {low}; received {number}.")
    return number


# Last: mixtures.sklearn imports this module at its own end, so each finds the other's names defined.
from mixtures import sklearn as _sk  # noqa: E402
