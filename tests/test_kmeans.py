"""K-means is classification EM with identity covariances and equal, fixed weights."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans

import mixtures as mx
from tests.helpers import blobs


def lloyd(x, centres, n_iter=100):
    """Plain NumPy Lloyd's algorithm."""
    centres = centres.copy()
    for _ in range(n_iter):
        labels = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        new = np.stack([x[labels == k].mean(axis=0) for k in range(len(centres))])
        if np.array_equal(new, centres):
            break
        centres = new
    return centres, labels


@pytest.fixture(scope="module")
def data():
    x, _ = blobs(4, 600, means=[[0, 0], [4, 1], [1, 5], [6, 6]], scales=[1.0, 1.2, 0.8, 1.5])
    init = x[[0, 1, 2, 3]].copy()
    return x, init


def test_hard_identity_gaussian_is_lloyd(data):
    x, init = data
    family = mx.Gaussian("identity")
    start = mx.Mixture(np.full(4, 0.25), family.make_params(init), family)
    result = mx.fit(x, family, 4, key=None, init=start, assignment="hard", update_weights=False,
                    max_iter=100, tol=1e-12)
    ref_centres, ref_labels = lloyd(x, init)
    assert bool(result.converged)
    np.testing.assert_allclose(result.mixture.params.means, ref_centres, rtol=1e-10)
    np.testing.assert_array_equal(result.mixture.predict(x), ref_labels)
    np.testing.assert_array_equal(result.mixture.weights, np.full(4, 0.25))

    km = KMeans(4, init=init, n_init=1, algorithm="lloyd", tol=0.0, max_iter=100).fit(x)
    np.testing.assert_allclose(result.mixture.params.means, km.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(result.mixture.predict(x), km.labels_)
    # The monitored objective is −½ (inertia + N·D log 2π) / N − log K: it never decreases.
    h = np.asarray(result.history)[: int(result.n_iter)]
    assert np.all(np.diff(h) >= -1e-12)
    expected = -0.5 * (km.inertia_ / len(x) + 2 * np.log(2 * np.pi)) - np.log(4)
    np.testing.assert_allclose(result.log_likelihood, expected, rtol=1e-10)


def test_hard_assignment_from_random_start_has_equal_weights(data):
    x, _ = data
    result = mx.fit(x, mx.Gaussian("identity"), 4, key=jax.random.key(0), assignment="hard",
                    update_weights=False)
    np.testing.assert_array_equal(result.mixture.weights, np.full(4, 0.25))
    labels = np.asarray(result.mixture.predict(x))
    means = np.stack([x[labels == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(result.mixture.params.means, means, rtol=1e-10)


def test_bad_assignment_is_rejected():
    with pytest.raises(ValueError, match="`assignment`"):
        mx.fit(np.zeros((5, 1)), mx.Gaussian(), 1, key=jax.random.key(0), assignment="fuzzy")
    with pytest.raises(TypeError, match="`update_weights`"):
        mx.fit(np.zeros((5, 1)), mx.Gaussian(), 1, key=jax.random.key(0), update_weights="no")
