"""Property tests (hypothesis): EM never decreases the log-likelihood."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixtures as mx

# Fixed shapes keep this to one compilation per covariance type.
N, D, K = 90, 3, 3


@st.composite
def data_sets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    spread = draw(st.floats(0.5, 8.0))
    offset = draw(st.floats(-1e3, 1e3))
    means = rng.normal(0.0, spread, size=(K, D))
    scales = rng.uniform(0.2, 2.0, size=(K, D))
    z = rng.integers(0, K, size=N)
    return offset + means[z] + rng.standard_normal((N, D)) * scales[z]


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=data_sets(), seed=st.integers(0, 2**31 - 1))
def test_log_likelihood_never_decreases(covariance, x, seed):
    r = mx.fit(x, mx.Gaussian(covariance), K, key=jax.random.key(seed), max_iter=40, tol=0.0)
    h = np.asarray(r.history)
    assert np.all(np.isfinite(h))
    steps = np.diff(np.append(h, float(r.log_likelihood)))
    assert np.all(steps >= -1e-9 * np.abs(h).max()), steps.min()
    resp = np.asarray(r.mixture.responsibilities(x))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
