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


def test_mixture_construction_checks_weights_against_the_parameters():
    g = mx.Gaussian("diag")
    params = g.make_params(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`weights` has shape \(3,\), but `params.means` has shape \(2, 2\)"):
        mx.Mixture(np.array([0.2, 0.3, 0.5]), params, g)
    with pytest.raises(ValueError, match=r"`weights` must have shape \(K,\)"):
        mx.Mixture(np.array(1.0), params, g)
    with pytest.raises(ValueError, match=r"`weights` has shape \(2, 3\)"):
        mx.Mixture(np.full((2, 3), 1 / 3), params, g)
    assert jax.vmap(lambda w: mx.Mixture(w, params, g))(np.full((3, 2), 0.5)).params.means.shape == (3, 2, 2)
    stacked = jax.tree.map(lambda a: np.stack([a] * 3), mx.Mixture(np.array([0.5, 0.5]), params, g))
    assert stacked.weights.shape == (3, 2)
    with pytest.raises(ValueError, match=r"`weights` has shape \(3, 2\), a batch of mixtures"):
        stacked.predict(GOOD)  # methods take one mixture


POISSON = mx.Mixture(np.array([0.5, 0.5]), mx.Poisson().make_params(np.array([[1.0], [5.0]])), mx.Poisson())


@pytest.mark.parametrize("method", ["log_prob", "responsibilities", "predict", "score", "bic", "aic", "icl"])
@pytest.mark.parametrize("value", [-3.0, 2.5])
def test_mixture_methods_check_the_family_domain_before_compiling(method, value):
    from tests.helpers import recording_compilations

    x = np.array([[1.0], [value]])
    with recording_compilations() as events, pytest.raises(ValueError, match="non-negative integer counts; row 1"):
        getattr(POISSON, method)(x)
    assert not events


def test_traced_rows_skip_the_domain_check():
    """Inside jit only shapes are known: the family's check on values is skipped (documented on Mixture)."""
    out = jax.jit(lambda x: POISSON.log_prob(x))(np.array([[-1.0]]))
    assert out.shape == (1,)


def test_fit_online_refuses_schedules_outside_0_1():
    from mixtures.online import fit_online

    x = np.random.default_rng(0).normal(size=(200, 2))
    common = dict(key=jax.random.key(0), batch_size=50, init_sample_size=50)
    with pytest.raises(ValueError, match=r"`step_size` .* gives nan at step 0"):
        fit_online(x, mx.Gaussian("diag"), 2, step_size=lambda t: jax.numpy.nan * t, **common)
    with pytest.raises(ValueError, match=r"`step_size` .* gives 1.5 at step 2 \(of the 8 steps"):
        fit_online(x, mx.Gaussian("diag"), 2, step_size=lambda t: jax.numpy.where(t < 2, 0.5, 1.5), n_epochs=2, **common)
