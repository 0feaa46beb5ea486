"""The bad-input matrix as data: every case is one line of ``CASES``.

A case names what is wrong, the error it must raise, a regular expression the
message must match (it names the argument and what was expected), and the
arguments that differ from ``BASE``, spelled as :func:`mixtures.fit` spells
them. A front end (``mx.fit``, ``mx.select``, ``Mixture.score``, an
estimator, the command line) is one adapter in ``tests/test_bad_input.py``
that turns those arguments into its own call; it runs every case whose
arguments it can express.

A value that must be built inside the ``pytest.raises`` block (a family
whose constructor is the thing that raises, a warm start built by
``make_params``) is wrapped in :class:`Lazy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import mixtures as mx

N, D, K = 20, 2, 2
GOOD = np.random.default_rng(0).normal(size=(N, D))


@dataclasses.dataclass(frozen=True)
class Lazy:
    """An argument built when the case runs, inside the block that expects the error."""

    build: Callable[[], Any]


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: ``args`` override ``BASE``; the error's message must match ``match`` (``re.search``)."""

    id: str
    error: type
    match: str
    args: dict


def case(id: str, error: type, match: str, **args) -> Case:
    return Case(id, error, match, args)


def base() -> dict:
    """Arguments that fit without error: 20 rows, 2 columns, 2 full-covariance Gaussian components."""
    return dict(x=GOOD, family=mx.Gaussian("full"), n_components=K, key=jax.random.key(0))


def resolve(args: dict) -> dict:
    """``base()`` updated by ``args``, with every :class:`Lazy` built."""
    return build(unbuilt(args))


def unbuilt(args: dict) -> dict:
    """``base()`` updated by ``args``, every :class:`Lazy` left as it is (only the harness's own work)."""
    out = base()
    out.update(args)
    return out


def build(args: dict) -> dict:
    """``args`` with every :class:`Lazy` built: the library's constructors, which may be what raises."""
    return {name: value.build() if isinstance(value, Lazy) else value for name, value in args.items()}


def _with(row: int, col: int, value, x=GOOD) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    x[row, col] = value
    return x


def _gaussian_start(means=np.zeros((K, D)), covariances=np.stack([np.eye(D)] * K), family=mx.Gaussian("full"), weights=(0.5, 0.5)):
    return mx.Mixture(np.asarray(weights), family.make_params(means, covariances), family)


def _raw_start(precisions_cholesky, family=mx.Gaussian("full"), weights=(0.5, 0.5)):
    """A warm start built from GaussianParams directly, bypassing make_params' checks."""
    return mx.Mixture(np.asarray(weights), mx.GaussianParams(np.zeros((K, D)), np.asarray(precisions_cholesky)), family)


@dataclasses.dataclass(frozen=True, eq=False)
class _Unhashable(mx.Gaussian):
    __hash__ = None


_EYE2 = np.stack([np.eye(D)] * K)
_COUNTS = np.random.default_rng(1).poisson(3.0, size=(N, D)).astype(float)
_BINARY = (GOOD > 0).astype(float)
_CODES = np.random.default_rng(2).integers(0, 3, size=(N, D)).astype(float)
_POSITIVE = np.exp(GOOD)
_UNIT = GOOD / np.linalg.norm(GOOD, axis=1, keepdims=True)
_MIXED = mx.Independent(((mx.Gaussian("diag"), (0,)), (mx.Poisson(), (1,))))

CASES = [
    # -- the data: values, shape, dtype --------------------------------------------------------
    case("nan", ValueError, r"`x` must contain only finite values.*nan at row 3, column 1", x=_with(3, 1, np.nan)),
    case("plus_inf", ValueError, r"`x` must contain only finite values.*inf at row 5, column 0", x=_with(5, 0, np.inf)),
    case("minus_inf", ValueError, r"`x` must contain only finite values.*-inf at row 0, column 1", x=_with(0, 1, -np.inf)),
    case("empty", ValueError, r"`x` must have at least one sample and one feature; received shape \(0, 2\)", x=np.zeros((0, D))),
    case("no_columns", ValueError, r"`x` must have at least one sample and one feature; received shape \(5, 0\)", x=np.zeros((5, 0))),
    case("one_d", ValueError, r"`x` must be 2-D .*received an array of shape \(20,\).*reshape\(-1, 1\)", x=GOOD[:, 0]),
    case("three_d", ValueError, r"`x` must be 2-D .*received an array of shape \(1, 20, 2\)", x=GOOD[None]),
    case("scalar", ValueError, r"`x` must be 2-D .*received an array of shape \(\)", x=3.0),
    case("ragged", TypeError, r"`x` must be an array-like of real numbers .*could not convert a list", x=[[1.0, 2.0], [3.0]]),
    case("strings", TypeError, r"`x` must hold real numbers .*received dtype <U1", x=np.array([["a", "b"], ["c", "d"]])),
    case("objects", TypeError, r"`x` must hold real numbers .*received dtype object", x=np.array([[1.0, None]] * N, dtype=object)),
    case("complex", TypeError, r"`x` must hold real numbers .*received dtype complex128", x=GOOD.astype(complex)),
    case("bool", TypeError, r"`x` must hold real numbers .*received dtype bool", x=GOOD > 0),
    # -- the number of components -------------------------------------------------------------
    case("k_zero", ValueError, r"`n_components(\[0\])?` must be a positive integer; received 0", n_components=0),
    case("k_negative", ValueError, r"`n_components(\[0\])?` must be a positive integer; received -1", n_components=-1),
    case("k_above_n", ValueError, r"`n_components(\[0\])?` must be at most the number of samples N \(20\); received 21", n_components=N + 1),
    case("k_float", TypeError, r"`n_components(\[0\])?` must be a positive integer; received 2.5", n_components=2.5),
    case("k_bool", TypeError, r"`n_components(\[0\])?` must be a positive integer; received True", n_components=True),
    # -- sample weights -----------------------------------------------------------------------
    case("weights_negative", ValueError, r"`sample_weight` must be finite and non-negative; received -1.0 at index 0", sample_weight=-np.ones(N)),
    case("weights_nan", ValueError, r"`sample_weight` must be finite and non-negative; received nan at index 4", sample_weight=_with(4, 0, np.nan, np.ones((N, 1)))[:, 0]),
    case("weights_inf", ValueError, r"`sample_weight` must be finite and non-negative; received inf at index 0", sample_weight=np.full(N, np.inf)),
    case("weights_all_zero", ValueError, r"`sample_weight` must have at least one positive weight; all are zero", sample_weight=np.zeros(N)),
    case("weights_length", ValueError, r"`sample_weight` must have shape \(20,\), one weight per sample; received shape \(19,\)", sample_weight=np.ones(N - 1)),
    case("weights_two_d", ValueError, r"`sample_weight` must have shape \(20,\), one weight per sample; received shape \(20, 1\)", sample_weight=np.ones((N, 1))),
    case("weights_bool", TypeError, r"`sample_weight` must hold real numbers; received dtype bool", sample_weight=np.ones(N, bool)),
    case("weights_strings", TypeError, r"`sample_weight` must hold real numbers; received dtype <U1", sample_weight=np.array(["1"] * N)),
    case("weights_too_few_positive", ValueError, r"`n_components(\[0\])?` .*must be at most the number of rows with positive `sample_weight` \(2\)", sample_weight=np.eye(N)[0] + np.eye(N)[1], n_components=3),
    # -- the family ---------------------------------------------------------------------------
    case("family_string", TypeError, r"`family` must be a mixtures.Family such as mx.Gaussian\(\)", family="gaussian"),
    case("family_class", TypeError, r"`family` must be a mixtures.Family such as mx.Gaussian\(\).*class", family=mx.Gaussian),
    case("family_unhashable", TypeError, r"`family` must be hashable .*_Unhashable is not", family=Lazy(_Unhashable)),
    case("covariance_unknown", ValueError, r"`covariance` must be one of \('full', 'diag', 'spherical', 'tied', 'identity', 'EII', .*'VVV'\); received 'ful'", family=Lazy(lambda: mx.Gaussian("ful"))),
    case("covariance_model_unknown", ValueError, r"`covariance` must be one of \(.*'VEV', 'EVV', 'VVV'\); received 'VXV'", family=Lazy(lambda: mx.Gaussian("VXV"))),
    case("covariance_number", TypeError, r"`covariance` must be one of \('full', .*'VVV'\); received 3", family=Lazy(lambda: mx.Gaussian(covariance=3))),
    case("models_without_the_class", TypeError, r"`models` names covariance models of mx.Gaussian, so `family` must be the class mx.Gaussian", models=["full"]),
    case("models_other_class", TypeError, r"`models` names covariance models of mx.Gaussian, so `family` must be the class mx.Gaussian.*Poisson", family=mx.Poisson, models="all"),
    case("models_string", TypeError, r"`models` must be \"all\" or a list of covariance model names .*\(for one model, \['full'\]\)", family=mx.Gaussian, models="full"),
    case("models_empty", ValueError, r"`models` must name at least one covariance model", family=mx.Gaussian, models=[]),
    case("models_unknown", ValueError, r"`models\[1\]` must be a covariance model mx.Gaussian accepts, one of EII, .*, full, identity; received 'ful'", family=mx.Gaussian, models=["diag", "ful"]),
    case("models_twice", ValueError, r"`models` names 'full' twice \(at 0 and 2\)", family=mx.Gaussian, models=["full", "diag", "full"]),
    case("reg_covar_negative", ValueError, r"`reg_covar` must be finite and non-negative; received -1e-06", family=Lazy(lambda: mx.Gaussian(reg_covar=-1e-6))),
    # -- each family's domain -----------------------------------------------------------------
    case("poisson_negative", ValueError, r"column 1 of `x` must hold non-negative integer counts; row 2 has -1.0", x=_with(2, 1, -1, _COUNTS), family=mx.Poisson()),
    case("poisson_fraction", ValueError, r"column 0 of `x` must hold non-negative integer counts; row 7 has 2.5", x=_with(7, 0, 2.5, _COUNTS), family=mx.Poisson()),
    case("bernoulli_two", ValueError, r"column 0 of `x` must hold binary values \(0 or 1\); row 1 has 2.0", x=_with(1, 0, 2, _BINARY), family=mx.Bernoulli()),
    case("bernoulli_half", ValueError, r"column 1 of `x` must hold binary values \(0 or 1\); row 0 has 0.5", x=_with(0, 1, 0.5, _BINARY), family=mx.Bernoulli()),
    case("categorical_too_large", ValueError, r"column 1 of `x` must hold integer category codes 0..2; row 3 has 3.0", x=_with(3, 1, 3, _CODES), family=mx.Categorical((3, 3))),
    case("categorical_negative", ValueError, r"column 0 of `x` must hold integer category codes 0..2; row 0 has -1.0", x=_with(0, 0, -1, _CODES), family=mx.Categorical((3, 3))),
    case("categorical_fraction", ValueError, r"column 0 of `x` must hold integer category codes 0..2; row 6 has 1.5", x=_with(6, 0, 1.5, _CODES), family=mx.Categorical((3, 3))),
    case("categorical_columns", ValueError, r"`x` must have 3 columns, one per feature; received 2", x=_CODES, family=mx.Categorical((3, 3, 3))),
    case("exponential_zero", ValueError, r"column 0 of `x` must hold strictly positive numbers; row 9 has 0.0", x=_with(9, 0, 0.0, _POSITIVE), family=mx.Exponential()),
    case("exponential_negative", ValueError, r"column 1 of `x` must hold strictly positive numbers; row 0 has -2.0", x=_with(0, 1, -2.0, _POSITIVE), family=mx.Exponential()),
    case("gamma_zero", ValueError, r"column 1 of `x` must hold strictly positive numbers; row 4 has 0.0", x=_with(4, 1, 0.0, _POSITIVE), family=mx.Gamma()),
    case("gamma_negative", ValueError, r"column 0 of `x` must hold strictly positive numbers; row 0 has -1.0", x=_with(0, 0, -1.0, _POSITIVE), family=mx.Gamma()),
    case("vmf_not_unit", ValueError, r"row 2 of `x` has norm 2.0; von Mises–Fisher data must be unit vectors", x=_with(2, 1, 0.0, _with(2, 0, 2.0, _UNIT)), family=mx.VonMisesFisher()),
    case("vmf_one_column", ValueError, r"von Mises–Fisher data must have shape \(N, D\) with D ≥ 2 .*received shape \(20, 1\)", x=np.ones((N, 1)), family=mx.VonMisesFisher()),
    case("independent_group", ValueError, r"Poisson\(min_rate=1e-06\), which models column 1 of `x`, rejects row 3: column 1 of `x` must hold non-negative integer counts", x=np.c_[GOOD[:, 0], _with(3, 0, -4, _COUNTS)[:, 0]], family=_MIXED),
    case("independent_columns", ValueError, r"`x` must have shape \(N, 2\).*received shape \(20, 3\)", x=np.ones((N, 3)), family=_MIXED),
    # -- initialisation -----------------------------------------------------------------------
    case("init_unknown", ValueError, r"`init` must be one of \('kmeans\+\+', 'kmeans', 'random', 'random_from_data', 'hc'\).*'kmeans\+\+\+'", init="kmeans+++"),
    case("init_number", (ValueError, TypeError), r"`init` must be one of \('kmeans\+\+', .*received 3", init=3),
    case("init_hc_poisson", ValueError, r"`init='hc'` \(mclust's Gaussian hierarchical agglomeration\) starts Gaussian mixtures only; received a Poisson family", init="hc", x=_COUNTS, family=mx.Poisson()),
    case("init_hc_labels", ValueError, r"`labels` cannot be combined with `init='hc'`", init="hc", labels=np.zeros(N, int)),
    case("init_random_gradient_family", ValueError, r"`init='random'` needs an M-step from summed statistics, which StudentT does not have", init="random", family=mx.StudentT()),
    case("warm_n_init", ValueError, r"`n_init` must be 1 with a warm start \(`init` a Mixture\); received 2", init=Lazy(_gaussian_start), n_init=2),
    case("warm_components", ValueError, r"`init` has 2 components, but n_components=3", init=Lazy(_gaussian_start), n_components=3),
    case("warm_family", ValueError, r"`init` is a mixture of Gaussian\(covariance='diag'.*but `family` is Gaussian\(covariance='full'", init=Lazy(lambda: _gaussian_start(covariances=np.ones((K, D)), family=mx.Gaussian("diag")))),
    case("warm_features", ValueError, r"`init.params` must be laid out as .*\(2, 3\).*received leaf shapes \[\(2, 2\)", init=Lazy(_gaussian_start), x=np.c_[GOOD, GOOD[:, :1]]),
    case("warm_layout", ValueError, r"`init.params` must be laid out as .*\(2, 2, 2\).*received leaf shapes \[\(2, 2\), \(2, 2\)\]", init=Lazy(lambda: mx.Mixture(np.array([0.5, 0.5]), _gaussian_start(covariances=np.ones((K, D)), family=mx.Gaussian("diag")).params, mx.Gaussian("full")))),
    case("warm_weights_sum", ValueError, r"`init.weights` must be 2 non-negative numbers summing to 1", init=Lazy(lambda: _gaussian_start(weights=(0.9, 0.9)))),
    case("warm_weights_negative", ValueError, r"`init.weights` must be 2 non-negative numbers summing to 1", init=Lazy(lambda: _gaussian_start(weights=(1.5, -0.5)))),
    case("warm_means_nan", ValueError, r"`means` and `covariances` must be finite", init=Lazy(lambda: _gaussian_start(means=np.full((K, D), np.nan)))),
    case("warm_covariance_shape", ValueError, r"`covariances` for covariance='full' with K=2, D=2 must have shape \(2, 2, 2\); received shape \(3, 2, 2\)", init=Lazy(lambda: _gaussian_start(covariances=np.stack([np.eye(D)] * 3)))),
    case("warm_covariance_not_pd", ValueError, r"`covariances` must be positive definite", init=Lazy(lambda: _gaussian_start(covariances=np.stack([np.eye(D), -np.eye(D)])))),
    case("warm_covariance_asymmetric", ValueError, r"`covariances` must be symmetric", init=Lazy(lambda: _gaussian_start(covariances=np.stack([np.eye(D), [[1.0, 0.5], [0.0, 1.0]]])))),
    case("warm_model_form_volume", ValueError, r"`covariances` do not have model EEI's form: the volumes .*differ \(1\.41421, 1\.73205\); EEI asks that they be equal", init=Lazy(lambda: _gaussian_start(covariances=np.array([[1.0, 2.0], [3.0, 1.0]]), family=mx.Gaussian("EEI"))), family=mx.Gaussian("EEI")),
    case("warm_model_form_orientation", ValueError, r"`covariances` do not have model VVE's form: the covariances do not share their axes .*one orientation", init=Lazy(lambda: _gaussian_start(covariances=np.array([np.eye(2) + [[0.0, 0.5], [0.5, 0.0]], np.diag([1.0, 2.0])]), family=mx.Gaussian("VVE"))), family=mx.Gaussian("VVE")),
    case("warm_variance_zero", ValueError, r"`covariances` \(variances\) must be positive", init=Lazy(lambda: _gaussian_start(covariances=np.array([[1.0, 0.0], [1.0, 1.0]]), family=mx.Gaussian("diag"))), family=mx.Gaussian("diag")),
    case("warm_precision_negative", ValueError, r"`init.params.precisions_cholesky` \(covariance='full'\) must have a positive diagonal.*component 1", init=Lazy(lambda: _raw_start(_EYE2 * np.array([1.0, -1.0])[:, None, None]))),
    case("warm_precision_zero", ValueError, r"`init.params.precisions_cholesky` \(covariance='diag'\) must have a positive diagonal.*component 0", init=Lazy(lambda: _raw_start(np.array([[0.0, 1.0], [1.0, 1.0]]), mx.Gaussian("diag"))), family=mx.Gaussian("diag")),
    case("warm_precision_not_triangular", ValueError, r"`init.params.precisions_cholesky` \(covariance='full'\) must hold upper-triangular factors.*component 0", init=Lazy(lambda: _raw_start(_EYE2 + np.array([[0.0, 0.0], [0.5, 0.0]])))),
    case("warm_precision_nan", ValueError, r"`init.params` must be finite", init=Lazy(lambda: _raw_start(_EYE2 * np.nan))),
    case("warm_poisson_rates", ValueError, r"`init.params` must be valid parameters of Poisson\(min_rate=1e-06\): `rates` must be finite and positive", init=Lazy(lambda: mx.Mixture(np.array([0.5, 0.5]), mx.PoissonParams(np.array([[1.0, 2.0], [0.0, 1.0]])), mx.Poisson())), x=_COUNTS, family=mx.Poisson()),
    case("warm_bernoulli_probs", ValueError, r"`init.params` must be valid parameters of Bernoulli\(.*\): `probs` must lie strictly between 0 and 1", init=Lazy(lambda: mx.Mixture(np.array([0.5, 0.5]), mx.BernoulliParams(np.array([[0.5, 1.0], [0.5, 0.5]])), mx.Bernoulli())), x=_BINARY, family=mx.Bernoulli()),
    case("warm_vmf_direction", ValueError, r"`init.params` must be valid parameters of VonMisesFisher\(.*\): .*unit", init=Lazy(lambda: mx.Mixture(np.array([0.5, 0.5]), mx.VonMisesFisherParams(np.array([[1.0, 1.0], [0.0, 1.0]]), np.ones(2)), mx.VonMisesFisher())), x=_UNIT, family=mx.VonMisesFisher()),
    case("warm_independent_group", ValueError, r"group 1 \(columns \(1,\)\) of `init.params` must be valid parameters of Poisson", init=Lazy(lambda: mx.Mixture(np.array([0.5, 0.5]), (_gaussian_start(np.zeros((K, 1)), np.ones((K, 1)), mx.Gaussian("diag")).params, mx.PoissonParams(-np.ones((K, 1)))), _MIXED)), x=np.c_[GOOD[:, 0], _COUNTS[:, 0]], family=_MIXED),
    # -- the key ------------------------------------------------------------------------------
    case("key_missing", TypeError, r"`key` must be a JAX PRNG key such as jax.random.key\(0\): init='kmeans\+\+' draws from it .*; received None", key=None),
    case("key_int", TypeError, r"`key` must be a JAX PRNG key such as jax.random.key\(0\); received 0", key=0),
    case("key_array", ValueError, r"`key` must be a single PRNG key; received a key array of shape \(2,\)", key=Lazy(lambda: jax.random.split(jax.random.key(0)))),
    # -- options: numbers and unknown strings --------------------------------------------------
    case("n_init_zero", ValueError, r"`n_init` must be a positive integer; received 0", n_init=0),
    case("max_iter_zero", ValueError, r"`max_iter` must be a positive integer; received 0", max_iter=0),
    case("max_iter_int32", ValueError, r"`max_iter` must be at most 2\*\*31 − 1, the largest int32 .*received 2147483648", max_iter=2**31),
    case("n_init_memory", ValueError, r"`n_init`( × \d+ candidates)? \(1000000000 restarts\) would need at least \d+ GiB", n_init=10**9),
    case("max_iter_float", TypeError, r"`max_iter` must be a positive integer; received 10.0", max_iter=10.0),
    case("tol_negative", ValueError, r"`tol` must be finite and non-negative; received -1.0", tol=-1.0),
    case("tol_nan", ValueError, r"`tol` must be finite and non-negative; received nan", tol=float("nan")),
    case("tol_string", TypeError, r"`tol` must be a non-negative real number; received '1e-3'", tol="1e-3"),
    case("chunk_zero", ValueError, r"`chunk_size` must be a positive integer; received 0", chunk_size=0),
    case("chunk_bool", TypeError, r"`chunk_size` must be a positive integer; received True", chunk_size=True),
    case("assignment_unknown", ValueError, r"`assignment` must be one of \('soft', 'hard'\); received 'Soft'", assignment="Soft"),
    case("update_weights_int", TypeError, r"`update_weights` must be True or False; received 1", update_weights=1),
    case("callback_not_callable", TypeError, r"`callback` must be callable or None; received 3", callback=3),
    case("prior_unknown", ValueError, r"`prior` must be None, \"default\" or a prior object; received 'defaults'", prior="defaults"),
    case("prior_number", TypeError, r"`prior` must be None, \"default\", a component prior .*received 3", prior=3),
    case("prior_dof", ValueError, r"`prior.dof` must be greater than D − 1 = 1 for covariance='full'; received 1.0", prior=mx.GaussianPrior(np.zeros(D), 0.01, 1.0, np.eye(D))),
    case("prior_scale_not_pd", ValueError, r"`prior.scale` must be positive definite", prior=mx.GaussianPrior(np.zeros(D), 0.01, 4.0, -np.eye(D))),
    case("prior_mean_shape", ValueError, r"`prior.mean` must have shape \(D,\) = \(2,\); received shape \(3,\)", prior=mx.GaussianPrior(np.zeros(3), 0.01, 4.0, np.eye(D))),
    case("prior_wrong_kind", TypeError, r"`prior` for a Gaussian family must be a mixtures.GaussianPrior", prior=mx.ConjugatePrior(1.0, np.zeros(D))),
    case("prior_dirichlet_below_one", ValueError, r"`prior.weights.concentration` must be at least 1 .*received 0.5", prior=mx.DirichletPrior(0.5)),
    case("prior_default_and_bad_dirichlet", ValueError, r"`prior.weights.concentration` must be at least 1 .*received 0.5", prior=mx.Prior("default", mx.DirichletPrior(0.5))),
    case("labels_out_of_range", ValueError, r"`labels` must be −1 \(unlabelled\) or a component index in 0..1; received 5 at index 0", labels=np.full(N, 5)),
    case("labels_fraction", TypeError, r"`labels` must hold integers \(−1 for unlabelled rows\); received dtype float64", labels=np.full(N, 0.5)),
    case("labels_length", ValueError, r"`labels` must have shape \(20,\), one label per sample; received shape \(19,\)", labels=np.zeros(N - 1, int)),
    case("criterion_unknown", ValueError, r"`criterion` must be one of \('bic', 'aic', 'icl'\); received 'BIC'", criterion="BIC"),
    case("mesh_string", TypeError, r"`mesh` must be a jax.sharding.Mesh .*; received 'data'", mesh="data"),
]
