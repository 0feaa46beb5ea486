"""scikit-learn estimators: :class:`GaussianMixture`, :class:`MixtureModel` and :class:`BayesianGaussianMixture`.

:class:`GaussianMixture` takes the constructor arguments of
``sklearn.mixture.GaussianMixture``, sets the same fitted attributes and has
the same methods, plus ``sample_weight`` in ``fit``; switching is one import.
:class:`MixtureModel` is the same estimator for any component family
(``mx.Poisson()``, ``mx.Bernoulli()``, ...). Both fit with :func:`mixtures.fit`:
the ``n_init`` restarts run side by side in one compiled program.
:class:`BayesianGaussianMixture` is ``sklearn.mixture.BayesianGaussianMixture``
on :func:`mixtures.fit_variational`.

Precision: every call computes in float64 for float64 (or integer) input and in
float32 for float32 input, as scikit-learn does, whatever JAX's global x64
flag says. The methods switch x64 on only for their own duration, with the
thread-local ``jax.enable_x64(True)`` context (compiled programs are cached
per x64 setting, so nothing is shared wrongly), and keep the fitted
parameters as NumPy arrays; ``mixture_`` is built on access, in the caller's
precision.

Importing this module needs scikit-learn (``pip install "jax-mixtures[sklearn]"``);
``import mixtures`` does not import it. See ``docs/migrating-from-sklearn.md``.
"""

from __future__ import annotations

import abc
import functools
import numbers
import time
import warnings
from typing import NamedTuple

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data
except ImportError as err:
    raise ImportError(
        f"mixtures.sklearn needs scikit-learn >= 1.6, which could not be imported ({err}); "
        'install it with: pip install "jax-mixtures[sklearn]"'
    ) from err

import jax
import numpy as np

from mixtures._src.core import checks
from mixtures._src.core import blocks
from mixtures._src.core.progress import Progress
from mixtures._src.core.family import Family
from mixtures._src.core.incomplete import check_missing, incomplete_rows
from mixtures._src.fitting.fit import fit as _mx_fit
from mixtures._src.families.gaussian import models as _models
from mixtures._src.families.gaussian.family import Gaussian, GaussianParams
from mixtures._src.fitting.init import check_method, initialize, tree_classes
from mixtures._src.core.mixture import Mixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "MixtureModel"]

# scikit-learn's init_params names, and the library's, to the library's.
INIT_PARAMS = {
    "kmeans": "kmeans",
    "k-means++": "kmeans++",
    "kmeans++": "kmeans++",
    "random": "random",
    "random_from_data": "random_from_data",
    "hc": "hc",
}
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical") + _models.MODELS


class _Outcome(NamedTuple):
    mixture: Mixture
    n_iter: int
    converged: bool
    lower_bounds: np.ndarray  # mean log-likelihood at every E-step


class _MixtureEstimator(DensityMixin, BaseEstimator, metaclass=abc.ABCMeta):
    """The estimator protocol shared by both estimators (abstract).

    A subclass supplies its family, its user-given starting point, and how the
    fitted parameters are kept as NumPy attributes and rebuilt as a
    :class:`~mixtures.Mixture`.
    """

    def __sklearn_tags__(self):
        """scikit-learn's tags; ``allow_nan`` with ``missing="marginalize"``."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    @abc.abstractmethod
    def _make_family(self) -> Family:
        """The validated component family from the constructor arguments."""

    @abc.abstractmethod
    def _check_own_params(self) -> None:
        """Validates the subclass's own constructor arguments."""

    @abc.abstractmethod
    def _start(self, family, n_features: int):
        """The user's starting parameters, validated on the host (NumPy only).

        Returns None when there are none, else ``(complete, build)``:
        ``build(initial, dtype)`` makes the starting :class:`~mixtures.Mixture`
        in ``dtype``, from the user's parameters alone when ``complete``,
        else by completing ``initial``, one restart's initialisation by
        ``init_params``.
        """

    @abc.abstractmethod
    def _check_continuable(self, family) -> None:
        """Raises ValueError unless a warm start can continue the fitted parameters with ``family``."""

    @abc.abstractmethod
    def _store(self, mixture: Mixture) -> None:
        """Sets the fitted parameter attributes (NumPy arrays) from a fitted mixture."""

    @abc.abstractmethod
    def _fitted_family(self) -> Family:
        """The family of the fitted parameters."""

    @abc.abstractmethod
    def _fitted_mixture(self) -> Mixture:
        """The fitted parameters as a Mixture of JAX arrays, in the current x64 mode."""

    # -- public protocol ------------------------------------------------------

    @property
    def mixture_(self) -> Mixture:
        """The fitted :class:`~mixtures.Mixture`, built in JAX's current precision.

        Its arrays are float64 where x64 is on (globally, or inside
        ``with jax.enable_x64(True):``) and the estimator was fitted on float64
        data, float32 otherwise.
        """
        check_is_fitted(self)
        return self._fitted_mixture()

    def fit(self, X, y=None, sample_weight=None):
        """Estimates the mixture's parameters by EM.

        Runs ``n_init`` restarts (one with ``warm_start`` after the first
        fit) of at most ``max_iter`` iterations each, a restart stopping when
        the mean log-likelihood changes by less than ``tol``, and keeps the
        restart with the highest final log-likelihood. Warns with
        ``ConvergenceWarning`` when that restart did not converge.

        Args:
          X: (n_samples, n_features) array-like.
          y: ignored.
          sample_weight: optional (n_samples,) non-negative row weights; an
            integer weight counts as that many repeated rows.

        Returns:
          self.
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fits as :meth:`fit` does, then returns :meth:`predict` of ``X``.

        Args:
          X: (n_samples, n_features) array-like.
          y: ignored.
          sample_weight: optional (n_samples,) non-negative row weights.

        Returns:
          (n_samples,) int64 component labels.
        """
        X = self._fit(X, sample_weight)
        with jax.enable_x64(True):
            return np.asarray(self._fitted_mixture().predict(X, missing=self.missing), dtype=np.int64)

    def predict(self, X):
        """The most probable component of each row.

        Args:
          X: (n_samples, n_features) array-like.

        Returns:
          (n_samples,) int64 component labels.
        """
        X = self._check_X(X)
        with jax.enable_x64(True):
            return np.asarray(self._fitted_mixture().predict(X, missing=self.missing), dtype=np.int64)

    def predict_proba(self, X):
        """Posterior probability of each component for each row (the responsibilities).

        Args:
          X: (n_samples, n_features) array-like.

        Returns:
          (n_samples, n_components) array; rows sum to one.
        """
        X = self._check_X(X)
        with jax.enable_x64(True):
            return np.asarray(self._fitted_mixture().responsibilities(X, missing=self.missing))

    def score_samples(self, X):
        """Log-likelihood log p(x) of each row under the fitted mixture.

        Args:
          X: (n_samples, n_features) array-like.

        Returns:
          (n_samples,) array.
        """
        X = self._check_X(X)
        with jax.enable_x64(True):
            return np.asarray(self._fitted_mixture().log_prob(X, missing=self.missing))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per row, Σₙ wₙ log p(xₙ) / Σₙ wₙ (the plain mean without weights).

        Args:
          X: (n_samples, n_features) array-like.
          y: ignored.
          sample_weight: optional (n_samples,) non-negative row weights.

        Returns:
          A float.
        """
        X = self._check_X(X)
        weights = checks.as_sample_weight(sample_weight, X.shape[0])
        with jax.enable_x64(True):
            log_prob = np.asarray(self._fitted_mixture().log_prob(X, missing=self.missing))
        return float(np.average(log_prob, weights=weights))

    def bic(self, X):
        """Bayesian information criterion on ``X``: −2 log L + p log N (lower is better).

        p counts the free parameters of the components with positive weight
        (:attr:`mixtures.Mixture.n_parameters`), as scikit-learn counts them.

        Args:
          X: (n_samples, n_features) array-like.

        Returns:
          A float.
        """
        log_prob = self.score_samples(X)
        return float(-2 * log_prob.sum() + self._n_parameters() * np.log(log_prob.shape[0]))

    def aic(self, X):
        """Akaike information criterion on ``X``: −2 log L + 2p (lower is better).

        Args:
          X: (n_samples, n_features) array-like.

        Returns:
          A float.
        """
        log_prob = self.score_samples(X)
        return float(-2 * log_prob.sum() + 2 * self._n_parameters())

    def sample(self, n_samples=1):
        """Draws from the fitted mixture, grouped by component as scikit-learn returns them.

        The draws depend on ``random_state`` as in scikit-learn: an integer
        gives the same draws at every call.

        Args:
          n_samples: number of draws, a positive integer.

        Returns:
          ``(X, y)``: (n_samples, n_features) draws and their (n_samples,)
          int64 components, sorted by component.
        """
        check_is_fitted(self)
        n = checks.positive_int(n_samples, "n_samples")
        key = _random_key(self.random_state)
        with jax.enable_x64(True):
            x, z = self._fitted_mixture().sample(n, key=key)
            x, z = np.asarray(x), np.asarray(z, dtype=np.int64)
        order = np.argsort(z, kind="stable")
        return x[order], z[order]

    # -- fitting --------------------------------------------------------------

    def _n_parameters(self) -> int:
        return self._fitted_mixture().n_parameters

    def _check_X(self, X):
        check_is_fitted(self)
        missing = check_missing(self.missing, self._fitted_family())
        X = _validate(self, X, missing, reset=False)
        if missing:
            incomplete_rows(X, self._fitted_family(), "X", drop=False)
        else:
            self._fitted_family().check_data(X)
        return X

    def _fit(self, X, sample_weight):
        """Validates everything on the host, fits, sets the attributes; returns the validated X."""
        self._check_params()
        family = self._make_family()
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        # A warm fit must see the features of the fit it continues.
        missing = check_missing(self.missing, family)
        X = _validate(self, X, missing, reset=not warm, ensure_min_samples=2)
        checked = X if not missing else incomplete_rows(X, family, "X", drop=False).filled
        n, d = X.shape
        k = int(self.n_components)
        if k > n:
            raise ValueError(f"`n_components` ({k}) must be at most the number of samples in X ({n}).")
        weights = checks.as_sample_weight(sample_weight, n)
        if weights is not None:
            checks.components_within_rows(k, int(np.count_nonzero(np.asarray(weights) > 0)))
        if self.__sklearn_tags__().input_tags.positive_only:
            # scikit-learn's wording for what its positive_only tag declares, then the family's own check
            check_non_negative(checked, f"{type(self).__name__}.fit (X) for {family!r}")
        family.check_data(checked)
        family.check_methods(checked)
        if warm:
            self._check_continuable(family)
        start = None if warm else self._start(family, d)

        # As in scikit-learn, random_state is drawn from only when an initialisation needs it.
        key = None if warm or (start is not None and start[0]) else _random_key(self.random_state)
        printer = _Printer(self.verbose, self.verbose_interval, self.tol) if self.verbose else None
        with jax.enable_x64(True):
            if warm:
                outcome = self._continue(self._fitted_mixture(), X, weights, printer)
            else:
                outcome = self._fresh(family, X, weights, key, start, printer, checked)
            self._store(outcome.mixture)
        self.n_iter_ = outcome.n_iter
        self.converged_ = outcome.converged
        self.lower_bounds_ = [float(v) for v in outcome.lower_bounds]
        self.lower_bound_ = self.lower_bounds_[-1] if self.lower_bounds_ else -np.inf
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"The best restart did not converge within max_iter={self.max_iter} iterations "
                f"(tol={self.tol}): increase max_iter or tol, try other init parameters, "
                "or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return X

    def _fresh(self, family, X, weights, key, start, printer, filled) -> _Outcome:
        """EM from a new start: ``init_params``'s, the user's, or the user's completed by ``init_params``'s.

        ``filled`` is X with any missing entries filled (the starts are computed from it).
        """
        k, n_init = int(self.n_components), int(self.n_init)
        method = INIT_PARAMS[self.init_params]
        check_method(method, family)
        options = dict(max_iter=max(int(self.max_iter), 1), tol=float(self.tol), sample_weight=weights, missing=self.missing)
        if start is None and self.max_iter > 0:
            if printer is not None:
                printer.begin(range(n_init), labelled=n_init > 1)
            result = _mx_fit(X, family, k, key=key, init=method, n_init=n_init, callback=printer, **options)
            if printer is not None:
                printer.end()
            return _outcome(result)
        if start is not None and start[0]:
            starts = [start[1](None, X.dtype)]
        else:
            starts = _initial_mixtures(family, k, method, key, n_init, filled, weights)
            if start is not None:
                starts = [start[1](initial, X.dtype) for initial in starts]
        if self.max_iter == 0:
            return _Outcome(starts[0], 0, False, np.zeros(0))
        best = None
        for restart, initial in enumerate(starts):
            callback = None
            if printer is not None:
                printer.begin(range(restart, restart + 1), labelled=len(starts) > 1)
                callback = printer.shifted(restart)
            result = _mx_fit(X, family, k, key=None, init=initial, callback=callback, **options)
            if printer is not None:
                printer.end()
            if best is None or float(result.log_likelihood) > float(best.log_likelihood):
                best = result
        return _outcome(best)

    def _continue(self, previous: Mixture, X, weights, printer) -> _Outcome:
        """``warm_start``: EM from the fitted mixture, its first change judged against ``lower_bound_``.

        scikit-learn compares the first iteration's log-likelihood with the
        previous fit's ``lower_bound_`` where :func:`mixtures.fit` compares it
        with −∞. One iteration runs first; if it converged by that rule (or
        ``max_iter`` is 1) it is the result, otherwise the whole fit runs from
        the same start.
        """
        if self.max_iter == 0:
            return _Outcome(previous, 0, False, np.zeros(0))
        family, k = previous.family, previous.n_components
        tol = float(self.tol)
        step = _mx_fit(
            X, family, k, key=None, init=previous, max_iter=1, tol=tol, sample_weight=weights, missing=self.missing
        )
        first = float(step.history[0])
        converged = abs(first - self.lower_bound_) < tol
        if printer is not None:
            printer.begin(range(1), labelled=False, previous=self.lower_bound_)
        if converged or self.max_iter == 1:
            if printer is not None:
                printer(Progress(0, 1, first))
                printer.end()
            return _Outcome(step.mixture, 1, converged, np.array([first]))
        result = _mx_fit(
            X, family, k, key=None, init=previous, max_iter=int(self.max_iter), tol=tol,
            sample_weight=weights, callback=printer, missing=self.missing,
        )
        if printer is not None:
            printer.end()
        return _outcome(result)

    # -- validation -------------------------------------------------------------

    def _check_params(self) -> None:
        """Validates the constructor arguments (scikit-learn estimators validate in fit, not __init__)."""
        _integer(self.n_components, "n_components", 1)
        _real(self.tol, "tol")
        _integer(self.max_iter, "max_iter", 0)
        _integer(self.n_init, "n_init", 1)
        check_missing(self.missing)
        if not isinstance(self.init_params, str) or self.init_params not in INIT_PARAMS:
            raise ValueError(f"`init_params` must be one of {sorted(INIT_PARAMS)}; received {self.init_params!r}.")
        rs = self.random_state
        is_int = isinstance(rs, numbers.Integral) and not isinstance(rs, bool)
        if not (rs is None or is_int or isinstance(rs, np.random.RandomState)):
            raise TypeError(
                f"`random_state` must be None, an integer or a numpy.random.RandomState; received {rs!r}."
            )
        if is_int and not 0 <= rs < 2**32:
            raise ValueError(f"`random_state` must be in [0, 2**32 - 1]; received {rs}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"`warm_start` must be True or False; received {self.warm_start!r}.")
        _integer(self.verbose, "verbose", 0, allow_bool=True)
        _integer(self.verbose_interval, "verbose_interval", 1)
        self._check_own_params()


class GaussianMixture(_MixtureEstimator):
    """Gaussian mixture fitted by EM: ``sklearn.mixture.GaussianMixture``'s interface on :func:`mixtures.fit`.

    The arguments, fitted attributes and methods are scikit-learn's, and from
    the same starting parameters the fit equals scikit-learn's to about 1e-6
    in float64. Differences: ``fit`` takes ``sample_weight``; the ``n_init``
    restarts run side by side in one compiled program and the one with the
    highest final log-likelihood is kept (scikit-learn compares the value
    before the last M-step); "kmeans" and "k-means++" initialise with the
    library's own K-means (:mod:`mixtures.init`), so random starts differ from
    scikit-learn's; and a component given weight exactly 0 in
    ``weights_init`` stays switched off.

    Args:
      n_components: number of components K.
      covariance_type: "full", "tied", "diag" or "spherical", as in
        scikit-learn; or one of mclust's fourteen models (see
        :class:`mixtures.Gaussian`), "EII", "VII", "EEI", "VEI", "EVI",
        "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV", whose
        attributes take the model's layout: (K,) for EII and VII, (K, D)
        for EEI, VEI, EVI and VVI, (K, D, D) for the others (EEE too: one
        copy per component, where "tied" keeps scikit-learn's (D, D)).
        ``precisions_init`` for these is in that layout and must have the
        model's form (checked to 1e-6 relative); ``bic`` and ``aic`` count
        mclust's free parameters.
      tol: a restart stops when the mean log-likelihood changes by less than this.
      reg_covar: non-negative number added to the covariance diagonal.
      max_iter: maximum number of EM iterations per restart; 0 only initialises.
      n_init: number of restarts.
      init_params: "kmeans", "k-means++", "random", "random_from_data" or
        "hc" (mclust's hierarchical start, see :func:`mixtures.fit`; every
        restart starts alike from it, so use ``n_init=1``).
      weights_init: optional (K,) initial weights.
      means_init: optional (K, n_features) initial means.
      precisions_init: optional initial precision matrices (inverse
        covariances), laid out as ``precisions_``. Parameters not given come
        from ``init_params``'s initialisation of each restart.
      random_state: None, an int or a ``numpy.random.RandomState`` ``rng``;
        the initialisation uses the JAX key
        ``jax.random.key(rng.randint(2**31 - 1))``, and :meth:`sample` draws
        another such key at every call.
      warm_start: if True, every fit after the first starts from the previous
        solution, with one restart.
      verbose: 0 silent, 1 prints restarts and iterations, 2 adds times and
        log-likelihood changes.
      verbose_interval: iterations between progress lines.
      missing: None (NaN refused, as scikit-learn does) or "marginalize":
        NaN marks a missing entry, and fitting and every method use each
        row's observed entries (see :func:`mixtures.fit`); a row with nothing
        observed is left out of the fit and gets the weights as its
        probabilities.

    Attributes:
      weights_: (K,) mixing weights.
      means_: (K, n_features) means.
      covariances_: (K, D, D) full, (D, D) tied, (K, D) diag or (K,) spherical
        (mclust's models: their layout, see ``covariance_type``).
      precisions_: the inverse covariances, same layout.
      precisions_cholesky_: upper-triangular U with precision = U Uᵀ, same layout.
      converged_: whether the kept restart converged.
      n_iter_: its number of EM iterations (M-steps).
      lower_bound_: its mean log-likelihood at the last E-step (before the last M-step).
      lower_bounds_: its mean log-likelihood at every E-step, a list.
      n_features_in_: number of features seen in fit.
      feature_names_in_: column names of X when they were all strings.
      mixture_: the fitted :class:`~mixtures.Mixture`.

    Example:
      >>> import mixtures as mx
      >>> from mixtures.sklearn import GaussianMixture
      >>> x = mx.datasets.load_old_faithful()
      >>> gm = GaussianMixture(n_components=2, random_state=0).fit(x)
      >>> gm.means_.shape, gm.covariances_.shape, gm.converged_
      ((2, 2), (2, 2, 2), True)
      >>> bool((gm.predict(x) == gm.predict_proba(x).argmax(axis=1)).all())
      True
      >>> eii = GaussianMixture(n_components=2, covariance_type="EII", random_state=0).fit(x)
      >>> eii.covariances_.shape, bool(eii.covariances_[0] == eii.covariances_[1])  # mclust's layout: (K,)
      ((2,), True)
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
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        missing=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.missing = missing

    def _check_own_params(self) -> None:
        if not isinstance(self.covariance_type, str) or self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"`covariance_type` must be one of {COVARIANCE_TYPES}; received {self.covariance_type!r}."
            )
        _real(self.reg_covar, "reg_covar")

    def _make_family(self) -> Gaussian:
        return Gaussian(covariance=self.covariance_type, reg_covar=float(self.reg_covar))

    def _start(self, family, n_features):
        k, d, cov = self.n_components, n_features, self.covariance_type
        weights = None if self.weights_init is None else _check_weights(self.weights_init, k)
        means = None if self.means_init is None else _array(self.means_init, "means_init", (k, d))
        chol = None if self.precisions_init is None else _precisions_cholesky(self.precisions_init, cov, k, d)
        if chol is not None and cov in _models.MODELS:
            # Of the model's form, as make_params checks it (the iterative M-steps start from it).
            try:
                family.make_params(np.zeros((k, d)), _covariances_of(chol, _is_matrix(cov)))
            except ValueError as err:
                raise ValueError(f"`precisions_init` for covariance_type={cov!r}: {err}") from None
        if weights is None and means is None and chol is None:
            return None
        if chol is not None and cov == "tied":
            chol = np.broadcast_to(chol, (k, d, d))

        def build(initial, dtype) -> Mixture:
            w = initial.weights if weights is None else checks.to_device(weights, dtype)
            m = initial.params.means if means is None else checks.to_device(means, dtype)
            u = initial.params.precisions_cholesky if chol is None else checks.to_device(chol, dtype)
            return Mixture(w, GaussianParams(m, u), family)

        return (weights is not None and means is not None and chol is not None), build

    def _check_continuable(self, family) -> None:
        k, d = self.means_.shape
        if self.n_components != k:
            raise ValueError(
                f"`n_components` ({self.n_components}) must stay {k} for warm_start to continue the previous fit."
            )
        expected = _layout_shape(self.covariance_type, k, d)
        if np.shape(self.precisions_cholesky_) != expected:
            raise ValueError(
                f"`covariance_type` ({self.covariance_type!r}) must stay that of the previous fit for "
                f"warm_start to continue it (its precisions_cholesky_ has shape {np.shape(self.precisions_cholesky_)})."
            )

    def _store(self, mixture: Mixture) -> None:
        weights = np.asarray(mixture.weights)
        chol = np.asarray(mixture.params.precisions_cholesky)
        if self.covariance_type == "tied":
            # Every component the last M-step updated holds the shared factor: take the heaviest's.
            chol = chol[int(np.argmax(weights))]
        u = chol.astype(np.float64)
        matrices = _is_matrix(self.covariance_type)
        covariances = _covariances_of(u, matrices)
        precisions = u @ np.swapaxes(u, -1, -2) if matrices else u**2
        self.weights_ = weights
        self.means_ = np.asarray(mixture.params.means)
        self.covariances_ = covariances.astype(chol.dtype)
        self.precisions_ = precisions.astype(chol.dtype)
        self.precisions_cholesky_ = chol

    def _fitted_family(self) -> Gaussian:
        return self._make_family()  # reg_covar may change between warm fits; the layout may not

    def _fitted_mixture(self) -> Mixture:
        k = self.weights_.shape[0]
        chol = np.asarray(self.precisions_cholesky_)
        if self.covariance_type == "tied":
            chol = np.broadcast_to(chol, (k,) + chol.shape)
        params = GaussianParams(checks.to_device(self.means_), checks.to_device(chol))
        return Mixture(checks.to_device(self.weights_), params, self._fitted_family())


class MixtureModel(_MixtureEstimator):
    """A mixture of any :class:`~mixtures.Family`, with scikit-learn's estimator protocol.

    ``MixtureModel(mx.Poisson(), n_components=3)`` has the methods of
    :class:`GaussianMixture` and its fitted attributes other than the
    Gaussian ones, and fits what :func:`mixtures.fit` fits with the same
    arguments and key.

    Args:
      family: the component family, e.g. ``mx.Poisson()``; None means
        ``mx.Gaussian()`` (full covariance).
      n_components: number of components K.
      tol: a restart stops when the mean log-likelihood changes by less than this.
      max_iter: maximum number of EM iterations per restart; 0 only initialises.
      n_init: number of restarts.
      init_params: "kmeans++" (the default), "kmeans", "random",
        "random_from_data" (scikit-learn's spelling "k-means++" too) or, for
        Gaussian families, "hc" (mclust's hierarchical start).
      mixture_init: optional :class:`~mixtures.Mixture` of ``family`` to start
        from (then one restart).
      random_state: None, an int or a ``numpy.random.RandomState`` ``rng``;
        the initialisation uses the JAX key
        ``jax.random.key(rng.randint(2**31 - 1))``.
      warm_start: if True, every fit after the first starts from the previous
        solution, with one restart.
      verbose: 0 silent, 1 prints restarts and iterations, 2 adds times and
        log-likelihood changes.
      verbose_interval: iterations between progress lines.
      missing: None (NaN refused, as scikit-learn does) or "marginalize":
        NaN marks a missing entry, and fitting and every method use each
        row's observed entries (see :func:`mixtures.fit`); a row with nothing
        observed is left out of the fit and gets the weights as its
        probabilities.

    Attributes:
      weights_: (K,) mixing weights.
      params_: the family's parameters (its NamedTuple, of NumPy arrays).
      family_: the fitted family.
      converged_: whether the kept restart converged.
      n_iter_: its number of EM iterations (M-steps).
      lower_bound_: its mean log-likelihood at the last E-step (before the last M-step).
      lower_bounds_: its mean log-likelihood at every E-step, a list.
      n_features_in_: number of features seen in fit.
      feature_names_in_: column names of X when they were all strings.
      mixture_: the fitted :class:`~mixtures.Mixture`.

    Example:
      >>> import numpy as np, mixtures as mx
      >>> from mixtures.sklearn import MixtureModel
      >>> rng = np.random.default_rng(0)
      >>> counts = np.concatenate([rng.poisson(2.0, (200, 1)), rng.poisson(30.0, (100, 1))])
      >>> model = MixtureModel(mx.Poisson(), n_components=2, random_state=0).fit(counts)
      >>> sorted(np.round(model.params_.rates[:, 0]).tolist()), model.converged_
      ([2.0, 30.0], True)
    """

    def __sklearn_tags__(self):
        """scikit-learn's tags, with input tags read from the family's domain (its ``check_data``).

        The family's :meth:`~mixtures.Family.check_data` is asked about a few
        small arrays: a family that accepts any real data keeps the default
        tags; one that refuses negative values but accepts positive ones
        (Exponential, Gamma) sets ``positive_only``; one that accepts only
        non-negative integers (Poisson) sets ``positive_only`` and
        ``categorical`` as well, so that scikit-learn's estimator checks give
        it non-negative integer data. Families with narrower domains
        (Bernoulli's 0/1, Categorical's codes below Cⱼ, von Mises–Fisher's
        unit vectors) have no scikit-learn tag; ``docs/reliability.md`` lists
        the checks they cannot pass.
        """
        tags = super().__sklearn_tags__()
        family = self.family if isinstance(self.family, Family) else None
        if family is None:
            return tags
        accepts = _domain_probe(family)
        if accepts["negative_refused_in_every_column"]:
            tags.input_tags.positive_only = True
            if accepts["counts"] and not accepts["positive"]:
                tags.input_tags.categorical = True
        return tags

    def __init__(
        self,
        family=None,
        n_components=1,
        *,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans++",
        mixture_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        missing=None,
    ):
        self.family = family
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.mixture_init = mixture_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.missing = missing

    def _check_own_params(self) -> None:
        family = self._make_family()
        try:
            hash(family)
        except TypeError:
            raise TypeError(
                f"`family` must be hashable (a frozen dataclass of plain values); received {family!r}."
            ) from None
        if self.mixture_init is not None and not isinstance(self.mixture_init, Mixture):
            raise TypeError(f"`mixture_init` must be None or a mixtures.Mixture; received {self.mixture_init!r}.")

    def _make_family(self) -> Family:
        if self.family is None:
            return Gaussian()
        if not isinstance(self.family, Family):
            raise TypeError(
                f"`family` must be a mixtures.Family such as mx.Poisson(), or None; received {self.family!r}."
            )
        return self.family

    def _start(self, family, n_features):
        start = self.mixture_init
        if start is None:
            return None
        if start.family != family:
            raise ValueError(f"`mixture_init` is a mixture of {start.family!r}, but `family` is {family!r}.")
        if start.n_components != self.n_components:
            raise ValueError(
                f"`mixture_init` has {start.n_components} components, but n_components={self.n_components}."
            )
        if start.n_features != n_features:
            raise ValueError(f"`mixture_init` has {start.n_features} features, but X has {n_features}.")
        weights = _check_weights(start.weights, self.n_components, "mixture_init.weights")
        params = jax.tree.map(np.asarray, start.params)
        if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params)):
            raise ValueError("`mixture_init.params` must be finite.")

        def build(initial, dtype) -> Mixture:
            return Mixture(checks.to_device(weights, dtype), jax.tree.map(lambda a: checks.to_device(a, dtype), params), family)

        return True, build

    def _check_continuable(self, family) -> None:
        if family != self.family_:
            raise ValueError(
                f"`family` ({family!r}) must stay that of the previous fit ({self.family_!r}) for "
                "warm_start to continue it."
            )
        if self.n_components != self.weights_.shape[0]:
            raise ValueError(
                f"`n_components` ({self.n_components}) must stay {self.weights_.shape[0]} for warm_start "
                "to continue the previous fit."
            )

    def _store(self, mixture: Mixture) -> None:
        self.family_ = mixture.family
        self.weights_ = np.asarray(mixture.weights)
        self.params_ = jax.tree.map(np.asarray, mixture.params)

    def _fitted_family(self) -> Family:
        return self.family_

    def _fitted_mixture(self) -> Mixture:
        return Mixture(checks.to_device(self.weights_), jax.tree.map(checks.to_device, self.params_), self.family_)


# -- helpers -------------------------------------------------------------------


def _validate(estimator, X, missing: bool, **options):
    """scikit-learn's ``validate_data``, NaN allowed with ``missing``; without it, its refusal names the option."""
    try:
        return validate_data(
            estimator, X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan" if missing else True, **options
        )
    except ValueError as error:
        if missing or "NaN" not in str(error):
            raise
        raise ValueError(
            f"{error}\nThis estimator fits rows with missing entries (NaN) by their observed entries with "
            f'{type(estimator).__name__}(..., missing="marginalize").'
        ) from None


def _random_key(random_state):
    """The JAX key for ``random_state``: ``jax.random.key(rng.randint(2**31 - 1))``, rng its RandomState."""
    return jax.random.key(int(check_random_state(random_state).randint(np.iinfo(np.int32).max)))


def _outcome(result) -> _Outcome:
    n_iter = int(result.n_iter)
    return _Outcome(result.mixture, n_iter, bool(result.converged), np.asarray(result.history)[:n_iter])


def _initial_mixtures(family, k, method, key, n_init, X, weights) -> list[Mixture]:
    """Each restart's starting mixture, from the keys :func:`mixtures.fit` splits ``key`` into."""
    x = checks.to_device(X)
    w = None if weights is None else checks.unit_mean_weights(weights, x.dtype)
    keys = jax.random.split(key, n_init)
    chunk = blocks.default_chunk_size(k * n_init, x.shape[1])
    classes = tree_classes(method, x, [k], weights)
    classes = None if classes is None else classes[0]
    starts = jax.tree.map(
        np.asarray, _initialize_restarts(keys, x, w, classes, family=family, k=k, method=method, chunk=chunk)
    )
    return [Mixture(checks.to_device(starts.weights[r]), jax.tree.map(lambda a: checks.to_device(a[r]), starts.params), family)
            for r in range(n_init)]


@functools.partial(jax.jit, static_argnames=("family", "k", "method", "chunk"))
def _initialize_restarts(keys, x, weights, classes, *, family, k, method, chunk):
    return jax.vmap(lambda key: initialize(method, family, k, key, x, weights, chunk, classes=classes))(keys)


def _integer(value, name: str, low: int, allow_bool: bool = False) -> int:
    if (isinstance(value, bool) and not allow_bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer ≥ {low}; received {value!r}.")
    if value < low:
        raise ValueError(f"`{name}` must be an integer ≥ {low}; received {value}.")
    return int(value)


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a non-negative real number; received {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be finite and non-negative; received {value}.")
    return float(value)


def _array(value, name: str, shape: tuple) -> np.ndarray:
    """A finite float64 array of the given shape, or a TypeError/ValueError naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers; received {value!r}.") from None
    if array.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}; received shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite.")
    return array


def _check_weights(value, k: int, name: str = "weights_init") -> np.ndarray:
    """Mixing weights as scikit-learn checks them: in [0, 1], summing to 1 (within 1e-8; 1e-6 for float32)."""
    weights = _array(value, name, (k,))
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(f"`{name}` must lie in [0, 1]; received {weights}.")
    atol = 1e-6 if np.asarray(value).dtype == np.float32 else 1e-8
    if abs(weights.sum() - 1.0) > atol:
        raise ValueError(f"`{name}` must sum to 1; received weights summing to {weights.sum()!r}.")
    return weights


def _layout_shape(covariance_type: str, k: int, d: int) -> tuple:
    """The shape of the covariance attributes: scikit-learn's four layouts, or an mclust model's."""
    if covariance_type == "tied":
        return (d, d)
    layout = _models.layout(_models.ALIASES.get(covariance_type, covariance_type))
    return {"full": (k, d, d), "diag": (k, d), "spherical": (k,)}[layout]


def _is_matrix(covariance_type: str) -> bool:
    """Whether the layout holds matrices (tied, or a full layout) rather than variances."""
    return covariance_type == "tied" or _models.layout(_models.ALIASES.get(covariance_type, covariance_type)) == "full"


def _covariances_of(u: np.ndarray, matrices: bool) -> np.ndarray:
    """Covariances from precision factors U: U⁻ᵀ U⁻¹ for matrices, 1/U² for variances."""
    if matrices:
        inverse = np.linalg.inv(u)  # U⁻¹; the covariance is U⁻ᵀ U⁻¹
        return np.swapaxes(inverse, -1, -2) @ inverse
    return 1.0 / u**2


def _precisions_cholesky(value, covariance_type: str, k: int, d: int) -> np.ndarray:
    """The upper-triangular U with precision = U Uᵀ (the covariance_type's layout), from precisions."""
    shape = _layout_shape(covariance_type, k, d)
    precisions = _array(value, "precisions_init", shape)
    if not _is_matrix(covariance_type):
        if np.any(precisions <= 0):
            raise ValueError(f"`precisions_init` for covariance_type={covariance_type!r} must be positive.")
        return np.sqrt(precisions)
    # With J the exchange matrix, J P J = L Lᵀ gives P = (J L J)(J L J)ᵀ, J L J upper triangular.
    mats = precisions.reshape(-1, d, d)
    lower = checks.symmetric_positive_definite(mats[:, ::-1, ::-1], "precisions_init")
    upper = lower[:, ::-1, ::-1]
    return upper[0] if covariance_type == "tied" else upper


class _Printer:
    """Prints EM progress as scikit-learn's ``verbose`` does, from :class:`~mixtures.Progress` reports.

    Restarts run side by side, so with more than one their lines interleave:
    each iteration line then names its restart, and the closing lines come
    when all have stopped. A restart converged when its last change was below
    ``tol``, the fit loop's own rule.
    """

    def __init__(self, verbose: int, interval: int, tol: float):
        self.verbose = verbose
        self.interval = interval
        self.tol = tol

    def begin(self, restarts: range, *, labelled: bool, previous: float = -np.inf) -> None:
        """Starts reporting ``restarts``, each from the value ``previous``; ``labelled`` names them in lines."""
        self.labelled = labelled
        self.restarts = restarts
        now = time.time()
        self.started = {r: now for r in restarts}
        self.last_time = dict(self.started)
        self.previous = {r: previous for r in restarts}
        self.change = {r: np.inf for r in restarts}

    def shifted(self, restart: int):
        """A callback that reports a fit's restart 0 as ``restart``."""
        return lambda p: self(Progress(p.restart + restart, p.iteration, p.log_likelihood))

    def __call__(self, progress: Progress) -> None:
        r, i, value = progress
        if i == 1:
            print(f"Initialization {r}")
        change = value - self.previous[r]
        self.previous[r], self.change[r] = value, change
        if i % self.interval:
            return
        where = f"  Initialization {r}, iteration {i}" if self.labelled else f"  Iteration {i}"
        if self.verbose == 1:
            print(where)
        else:
            now = time.time()
            print(f"{where}\t time lapse {now - self.last_time[r]:.5f}s\t ll change {change:.5f}")
            self.last_time[r] = now

    def end(self) -> None:
        """Prints each restart's closing line."""
        now = time.time()
        for r in self.restarts:
            status = "converged" if abs(self.change[r]) < self.tol else "did not converge"
            name = f"Initialization {r}" if self.labelled else "Initialization"
            if self.verbose == 1:
                print(f"{name} {status}.")
            else:
                print(
                    f"{name} {status}. time lapse {now - self.started[r]:.5f}s\t "
                    f"lower bound {self.previous[r]:.5f}."
                )


_PROBES = {
    "real": [[-1.5, 0.5], [2.25, -3.0]],
    "non_negative": [[0.0, 0.5], [2.25, 3.0]],
    "positive": [[0.5, 1.5], [2.25, 3.5]],
    "counts": [[0.0, 3.0], [2.0, 5.0]],
}


@functools.lru_cache(maxsize=64)
def _domain_probe(family: Family) -> dict:
    """Which of a few small two-column arrays ``family.check_data`` accepts (host checks only)."""
    def accepted(rows) -> bool:
        try:
            family.check_data(np.asarray(rows, np.float64))
        except (ValueError, TypeError):
            return False
        return True

    accepts = {name: accepted(rows) for name, rows in _PROBES.items()}
    # positive_only: some non-negative data are accepted, and a negative value in any one column is refused
    # (an Independent of a Gaussian and a Poisson column takes negative values in its first column).
    base = next((_PROBES[n] for n in ("positive", "non_negative", "counts") if accepts[n]), None)
    accepts["negative_refused_in_every_column"] = base is not None and not any(
        accepted([[-v if j == c else v for j, v in enumerate(row)] for row in base]) for c in range(2)
    )
    return accepts



# Last: the estimator builds on this module's helpers (its module imports them at its end).
from mixtures._sklearn_variational import BayesianGaussianMixture  # noqa: E402
