"""Validation outside ``mx.fit``: family configuration, ``make_params``, Mixture methods, traced input.

The bad inputs of the fitting front ends are the table in tests/bad_inputs.py,
run by tests/test_bad_input.py.
"""

import jax
import numpy as np
import pytest

import mixtures as mx

GOOD = np.random.default_rng(0).normal(size=(20, 2))


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


def test_traced_sample_weight_of_the_wrong_shape_is_named():
    family = mx.Gaussian("diag")
    m = mx.Mixture(np.array([0.5, 0.5]), family.make_params(np.zeros((2, 2)), np.ones((2, 2))), family)
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(20,\)"):
        jax.jit(lambda w: mx.em_step(m, GOOD, sample_weight=w))(np.ones((20, 1)))
