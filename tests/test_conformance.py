"""The public conformance check, run over every built-in family, and shown to catch broken ones."""

import dataclasses

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures.testing import check_family
from tests.helpers import blobs

GAUSSIAN_X = blobs(0, 300, means=[[0, 0, 0], [5, 5, 0], [0, 5, 5]], scales=[1.0, 0.8, 1.2])[0]
GAUSSIAN_BAD = [GAUSSIAN_X[:, 0], np.full((3, 3), np.nan), GAUSSIAN_X.astype(complex)]


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied", "identity"])
@pytest.mark.slow
def test_gaussian_families_conform(covariance):
    report = check_family(mx.Gaussian(covariance), GAUSSIAN_X, key=jax.random.key(0), n_components=3,
                          bad_data=GAUSSIAN_BAD, n_samples=5000)
    assert set(report) >= {"batched_density", "m_step_maximises", "monotone", "sampling",
                           "vmapped_restarts", "rejects_bad_data"}


def _rng(seed):
    return np.random.default_rng(seed)


def _two_groups(sample, n=150):
    """Rows from two parameter settings, stacked."""
    return np.concatenate([sample(_rng(1), 0, n), sample(_rng(2), 1, n)])


OTHER_FAMILIES = {
    "poisson": (mx.Poisson(), lambda: _two_groups(lambda r, g, n: r.poisson([[2.0, 9.0], [12.0, 1.0]][g], (n, 2))),
                [np.array([[1.0, -1.0]]), np.array([[0.5, 1.0]])]),
    "bernoulli": (mx.Bernoulli(), lambda: _two_groups(
        lambda r, g, n: (r.random((n, 3)) < [[0.1, 0.8, 0.5], [0.9, 0.2, 0.4]][g]).astype(float)),
        [np.array([[0.0, 2.0, 1.0]])]),
    "categorical": (mx.Categorical((3, 2)), lambda: _two_groups(
        lambda r, g, n: np.stack([r.choice(3, n, p=[[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]][g]),
                                  r.choice(2, n, p=[[0.8, 0.2], [0.3, 0.7]][g])], axis=1).astype(float)),
        [np.array([[3.0, 0.0]]), np.array([[0.0, 1.0, 1.0]])]),
    "exponential": (mx.Exponential(), lambda: _two_groups(lambda r, g, n: r.exponential([[1.0, 5.0], [8.0, 0.5]][g], (n, 2))),
                    [np.array([[1.0, 0.0]])]),
    "gamma": (mx.Gamma(), lambda: _two_groups(lambda r, g, n: r.gamma([[2.0, 9.0], [12.0, 1.5]][g], 1.0, (n, 2))),
              [np.array([[1.0, -2.0]])]),
    "student_t": (mx.StudentT(dof=4.0), lambda: _two_groups(lambda r, g, n: 6.0 * g + r.standard_t(4.0, (n, 2))),
                  [np.array([[np.inf, 0.0]])]),
    "von_mises_fisher": (mx.VonMisesFisher(), lambda: _two_groups(
        lambda r, g, n: _unit(r.normal([[0.0, 0.0, 6.0], [6.0, 0.0, 0.0]][g], 1.0, (n, 3)))),
        [np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0]])]),
    "independent": (mx.Independent(((mx.Gaussian("diag"), (0,)), (mx.Poisson(), (1,)))), lambda: _two_groups(
        lambda r, g, n: np.stack([r.normal(5.0 * g, 1.0, n), r.poisson([2.0, 9.0][g], n)], axis=1)),
        [np.array([[0.0, -1.0]])]),
}


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(OTHER_FAMILIES))
@pytest.mark.slow
def test_other_built_in_families_conform(name):
    family, data, bad = OTHER_FAMILIES[name]
    report = check_family(family, data(), key=jax.random.key(0), bad_data=bad, n_restarts=2, n_samples=5000)
    assert "monotone" in report and "sampling" in report and report["rejects_bad_data"]["cases"] == len(bad)


# Deliberately broken families: each must fail the check that targets its defect.


@dataclasses.dataclass(frozen=True)
class BiasedMStep(mx.Gaussian):
    def m_step(self, stats, counts, previous):
        p = super().m_step(stats, counts, previous)
        return p._replace(means=p.means + 0.05)


@dataclasses.dataclass(frozen=True)
class WideSampler(mx.Gaussian):
    def sample(self, params, key):
        return params.means + 1.1 * (super().sample(params, key) - params.means)


@dataclasses.dataclass(frozen=True)
class WrongBatchedDensity(mx.Gaussian):
    def log_prob_components(self, params, x):
        return super().log_prob_components(params, x) + 1e-3


@dataclasses.dataclass(frozen=True)
class AcceptsAnything(mx.Gaussian):
    pass


@pytest.mark.parametrize(
    "family, failing",
    [
        (BiasedMStep("diag"), "m_step_maximises"),
        (WideSampler("diag"), "sampling"),
        (WrongBatchedDensity("diag"), "batched_density"),
    ],
)
def test_check_family_catches_broken_families(family, failing):
    with pytest.raises(AssertionError, match=failing):
        check_family(family, GAUSSIAN_X, key=jax.random.key(0), n_components=3, n_samples=20000, only=[failing])


def test_check_family_catches_accepted_bad_data():
    with pytest.raises(AssertionError, match="rejects_bad_data"):
        check_family(mx.Gaussian("spherical"), GAUSSIAN_X, key=jax.random.key(0), n_components=3,
                     bad_data=[GAUSSIAN_X * 2.0], only=["rejects_bad_data"])
