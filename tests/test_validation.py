"""Bad input gets a clear ValueError/TypeError before anything is compiled."""

import jax
import numpy as np
import pytest

import mixtures as mx

GOOD = np.random.default_rng(0).normal(size=(20, 2))


def with_nan():
    x = GOOD.copy()
    x[3, 1] = np.nan
    return x


def with_inf():
    x = GOOD.copy()
    x[5, 0] = -np.inf
    return x


# (case id, keyword overrides of mx.fit, exception type, words the message must contain)
FIT_CASES = [
    ("nan", dict(x=with_nan()), ValueError, ["`x`", "finite", "row 3", "column 1"]),
    ("inf", dict(x=with_inf()), ValueError, ["`x`", "finite", "row 5"]),
    ("one_d", dict(x=GOOD[:, 0]), ValueError, ["`x`", "2-D", "(20,)"]),
    ("three_d", dict(x=GOOD[None]), ValueError, ["`x`", "2-D"]),
    ("empty", dict(x=np.zeros((0, 2))), ValueError, ["`x`", "at least one sample"]),
    ("no_features", dict(x=np.zeros((5, 0))), ValueError, ["`x`", "at least one sample and one feature"]),
    ("strings", dict(x=np.array([["a", "b"], ["c", "d"]])), TypeError, ["`x`", "real numbers"]),
    ("objects", dict(x=np.array([[1, None]], dtype=object)), TypeError, ["`x`", "real numbers"]),
    ("complex", dict(x=GOOD.astype(complex)), TypeError, ["`x`", "complex"]),
    ("bool", dict(x=GOOD > 0), TypeError, ["`x`", "bool"]),
    ("k_zero", dict(n_components=0), ValueError, ["`n_components`", "positive", "0"]),
    ("k_above_n", dict(n_components=21), ValueError, ["`n_components`", "at most", "20", "21"]),
    ("k_float", dict(n_components=2.5), TypeError, ["`n_components`", "integer"]),
    ("family_string", dict(family="gaussian"), TypeError, ["`family`", "mx.Gaussian()"]),
    ("init_unknown", dict(init="kmeans+++"), ValueError, ["`init`", "random_from_data", "kmeans+++"]),
    ("key_missing", dict(key=None), TypeError, ["`key`", "jax.random.key"]),
    ("key_int", dict(key=0), TypeError, ["`key`", "jax.random.key"]),
    ("max_iter_zero", dict(max_iter=0), ValueError, ["`max_iter`", "positive"]),
    ("tol_negative", dict(tol=-1.0), ValueError, ["`tol`", "non-negative"]),
    ("tol_nan", dict(tol=float("nan")), ValueError, ["`tol`", "finite"]),
    ("chunk_zero", dict(chunk_size=0), ValueError, ["`chunk_size`", "positive"]),
    ("weights_negative", dict(sample_weight=-np.ones(20)), ValueError, ["`sample_weight`", "non-negative", "index 0"]),
    ("weights_nan", dict(sample_weight=np.full(20, np.nan)), ValueError, ["`sample_weight`", "finite"]),
    ("weights_zero", dict(sample_weight=np.zeros(20)), ValueError, ["`sample_weight`", "positive"]),
    ("weights_length", dict(sample_weight=np.ones(19)), ValueError, ["`sample_weight`", "(20,)", "(19,)"]),
    ("weights_too_few_positive", dict(sample_weight=np.eye(20)[0] + np.eye(20)[1], n_components=3),
     ValueError, ["`sample_weight`", "3"]),
]


@pytest.mark.parametrize("case", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_rejects_bad_input_before_compiling(case, monkeypatch):
    _, overrides, error, words = case
    compiled = []
    monkeypatch.setattr(mx.fitting, "_fit_restarts", lambda *a: compiled.append(a))
    monkeypatch.setattr(mx.fitting, "_fit_from", lambda *a: compiled.append(a))
    kwargs = dict(x=GOOD, family=mx.Gaussian(), n_components=2, key=jax.random.key(0))
    kwargs.update(overrides)
    x = kwargs.pop("x")
    with pytest.raises(error) as info:
        mx.fit(x, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert not compiled


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(covariance="ful"), ValueError, ["`covariance`", "'full'", "'ful'"]),
        (dict(covariance=None), TypeError, ["`covariance`"]),
        (dict(reg_covar=-1e-6), ValueError, ["`reg_covar`", "non-negative"]),
        (dict(reg_covar="small"), TypeError, ["`reg_covar`"]),
    ],
)
def test_gaussian_rejects_bad_configuration(kwargs, error, words):
    with pytest.raises(error) as info:
        mx.Gaussian(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "covariance, means, covs, words",
    [
        ("full", np.zeros((2, 2)), np.stack([np.eye(2)] * 3), ["shape (2, 2, 2)", "(3, 2, 2)"]),
        ("full", np.zeros((2, 2)), np.stack([np.eye(2), -np.eye(2)]), ["positive definite"]),
        ("full", np.zeros((2, 2)), np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]), ["symmetric"]),
        ("tied", np.zeros((2, 2)), np.stack([np.eye(2)] * 2), ["shape (2, 2)"]),
        ("diag", np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]]), ["positive"]),
        ("spherical", np.zeros(2), np.ones(2), ["`means`", "(K, D)"]),
    ],
)
def test_make_params_rejects_bad_parameters(covariance, means, covs, words):
    with pytest.raises(ValueError) as info:
        mx.Gaussian(covariance).make_params(means, covs)
    for word in words:
        assert word in str(info.value)


def test_warm_start_must_match():
    family = mx.Gaussian("diag")
    start = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    with pytest.raises(ValueError, match="has 2 components, but n_components=3"):
        mx.fit(GOOD, family, 3, key=None, init=start)
    with pytest.raises(ValueError, match="Gaussian"):
        mx.fit(GOOD, mx.Gaussian("full"), 2, key=None, init=start)
    with pytest.raises(ValueError, match="features"):
        mx.fit(GOOD[:, :1], family, 2, key=None, init=start)
    bad = mx.Mixture(np.array([0.9, 0.9]), start.params, family)
    with pytest.raises(ValueError, match="summing to 1"):
        mx.fit(GOOD, family, 2, key=None, init=bad)


def test_mixture_methods_check_their_input():
    family = mx.Gaussian("diag")
    m = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    with pytest.raises(ValueError, match="2 features"):
        m.log_prob(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        m.predict(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        m.responsibilities(np.zeros(2))
    with pytest.raises(TypeError, match="PRNG key"):
        m.sample(3, key=3)
    with pytest.raises(ValueError, match="`n`"):
        m.sample(0, key=jax.random.key(0))
    with pytest.raises(TypeError, match="`family`"):
        mx.Mixture(np.array([1.0]), m.params, "diag")


def test_integer_data_is_converted_to_float():
    x = np.random.default_rng(1).integers(0, 10, size=(30, 2))
    result = mx.fit(x, mx.Gaussian("diag"), 2, key=jax.random.key(0), max_iter=5)
    assert np.issubdtype(result.mixture.params.means.dtype, np.floating)
    assert np.all(np.isfinite(np.asarray(result.mixture.params.covariances)))


def test_warm_start_with_the_wrong_parameter_layout_is_named():
    diag = mx.Gaussian("diag")
    start = mx.Mixture(np.array([0.5, 0.5]), diag.make_params(np.zeros((2, 2)), np.ones((2, 2))), mx.Gaussian("full"))
    with pytest.raises(ValueError, match=r"`init.params` must be laid out.*\(2, 2, 2\).*\(2, 2\)"):
        mx.fit(GOOD, mx.Gaussian("full"), 2, key=None, init=start)


def test_traced_sample_weight_of_the_wrong_shape_is_named():
    family = mx.Gaussian("diag")
    m = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(20,\)"):
        jax.jit(lambda w: mx.em_step(m, GOOD, sample_weight=w))(np.ones((20, 1)))


def test_random_init_of_a_gradient_family_is_refused_on_the_host(monkeypatch):
    monkeypatch.setattr(mx.fitting, "_fit_restarts", None)
    with pytest.raises(ValueError, match="init='random'"):
        mx.fit(GOOD, mx.StudentT(), 2, key=jax.random.key(0), init="random")


def test_unhashable_family_is_named():
    import dataclasses

    @dataclasses.dataclass(frozen=True, eq=False)
    class Unhashable(mx.Gaussian):
        __hash__ = None

    with pytest.raises(TypeError, match="`family` must be hashable"):
        mx.fit(GOOD, Unhashable(), 2, key=jax.random.key(0))
