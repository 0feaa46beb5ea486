"""Property tests (hypothesis) over every built-in family.

For every family: the log-likelihood never decreases; responsibilities are
finite and sum to one; permuting the rows does not change a fit; permuting
the components of a warm start permutes the result; the same key gives
bit-identical fits and different keys different initialisations. For
Gaussians: an affine map of the data maps the fit from the mapped warm
start (with ``reg_covar=0``, which no affine map disturbs).

Hypothesis draws values, never shapes: each family has one data shape, so
each test compiles one program per family however many examples run. The
examples are derandomised, so CI sees the same ones on every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixtures as mx

N, K = 48, 3
WARM_ITER = 12
KEYED_ITER = 4
EXAMPLES = settings(max_examples=10, deadline=None, derandomize=True)
seeds = st.integers(0, 2**32 - 1)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A family, a sampler of N rows with cluster structure, and a warm start built from drawn rows."""

    name: str
    family: mx.Family
    sample: Callable[[np.random.Generator], np.ndarray]
    start: Callable[[np.random.Generator, np.ndarray], mx.Mixture]
    init: str = "random"  # the keyed initialisation: continuous in the key for every family that allows it


def _labels(rng):
    return rng.integers(0, K, N)


def _weights(rng):
    return rng.dirichlet(np.full(K, 5.0))


def _rows(rng, x):
    return x[rng.choice(N, K, replace=False)]


def _gaussian_sample(rng):
    means = rng.normal(0.0, rng.uniform(2.0, 8.0), (K, 2)) + rng.uniform(-1e3, 1e3)
    scales = rng.uniform(0.3, 2.0, (K, 2))
    z = _labels(rng)
    return means[z] + rng.standard_normal((N, 2)) * scales[z]


def _gaussian_start(covariance):
    family = mx.Gaussian(covariance, reg_covar=0.0)

    def start(rng, x):
        var = np.var(x, axis=0) * rng.uniform(0.3, 1.0, (K, 2))
        covs = {
            "full": np.stack([np.diag(v) for v in var]),
            "tied": np.diag(var[0]),
            "diag": var,
            "spherical": var.mean(axis=1),
        }[covariance]
        return mx.Mixture(_weights(rng), family.make_params(_rows(rng, x), covs), family)

    return start


def _poisson_sample(rng):
    rates = rng.uniform(0.5, 20.0, (K, 2))
    return rng.poisson(rates[_labels(rng)]).astype(float)


def _bernoulli_sample(rng):
    probs = rng.uniform(0.05, 0.95, (K, 4))
    return (rng.random((N, 4)) < probs[_labels(rng)]).astype(float)


CATEGORIES = (3, 4)


def _categorical_sample(rng):
    z = _labels(rng)
    columns = [np.array([rng.choice(c, p=p) for p in rng.dirichlet(np.ones(c), K)[z]]) for c in CATEGORIES]
    return np.stack(columns, axis=1).astype(float)


def _categorical_probs(rng, x):
    blocks = []
    for j, c in enumerate(CATEGORIES):
        onehot = np.eye(c)[_rows(rng, x)[:, j].astype(int)]
        blocks.append(0.6 * onehot + 0.4 * rng.dirichlet(np.ones(c), K))
    return np.concatenate(blocks, axis=1)


def _positive_sample(shape_low):
    def sample(rng):
        z = _labels(rng)
        shapes = rng.uniform(shape_low, 10.0, (K, 2))
        rates = rng.uniform(0.5, 5.0, (K, 2))
        return rng.gamma(shapes[z], 1.0 / rates[z])

    return sample


def _vmf_sample(rng):
    centres = rng.normal(size=(K, 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    kappa = rng.uniform(2.0, 50.0, K)
    z = _labels(rng)
    x = centres[z] * kappa[z, None] + rng.standard_normal((N, 3)) * np.sqrt(kappa[z, None])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _student_sample(rng):
    means = rng.normal(0.0, 5.0, (K, 2))
    return means[_labels(rng)] + rng.standard_t(4.0, (N, 2))


MIXED = mx.Independent(((mx.Gaussian("diag"), (0,)), (mx.Poisson(), (1,))))


def _mixed_sample(rng):
    z = _labels(rng)
    return np.c_[rng.normal(0.0, 4.0, K)[z] + rng.standard_normal(N), rng.poisson(rng.uniform(0.5, 15.0, K)[z])].astype(float)


def _mixed_start(rng, x):
    rows = _rows(rng, x)
    gaussian = mx.Gaussian("diag").make_params(rows[:, :1], np.full((K, 1), np.var(x[:, 0])))
    poisson = mx.Poisson().make_params(rows[:, 1:] + 0.5)
    return mx.Mixture(_weights(rng), (gaussian, poisson), MIXED)


def _start(family, params):
    return lambda rng, x: mx.Mixture(_weights(rng), params(rng, x), family)


SPECS = [
    *(Spec(f"gaussian-{c}", mx.Gaussian(c, reg_covar=0.0), _gaussian_sample, _gaussian_start(c)) for c in ("full", "diag", "spherical", "tied")),
    Spec("poisson", mx.Poisson(), _poisson_sample, _start(mx.Poisson(), lambda rng, x: mx.Poisson().make_params(_rows(rng, x) + 0.5))),
    Spec("bernoulli", mx.Bernoulli(), _bernoulli_sample, _start(mx.Bernoulli(), lambda rng, x: mx.Bernoulli().make_params(np.clip(_rows(rng, x), 0.2, 0.8)))),
    Spec("categorical", mx.Categorical(CATEGORIES), _categorical_sample, _start(mx.Categorical(CATEGORIES), lambda rng, x: mx.Categorical(CATEGORIES).make_params(_categorical_probs(rng, x)))),
    Spec("exponential", mx.Exponential(), _positive_sample(1.0), _start(mx.Exponential(), lambda rng, x: mx.Exponential().make_params(1.0 / _rows(rng, x)))),
    Spec("gamma", mx.Gamma(), _positive_sample(0.5), _start(mx.Gamma(), lambda rng, x: mx.Gamma().make_params(np.full((K, 2), 2.0), 2.0 / _rows(rng, x)))),
    Spec("von_mises_fisher", mx.VonMisesFisher(), _vmf_sample, _start(mx.VonMisesFisher(), lambda rng, x: mx.VonMisesFisher().make_params(_rows(rng, x), rng.uniform(1.0, 20.0, K)))),
    Spec("student_t", mx.StudentT(), _student_sample, _start(mx.StudentT(), lambda rng, x: mx.StudentT().make_params(_rows(rng, x), np.ones((K, 2)) * np.std(x, axis=0))), init="random_from_data"),
    Spec("independent", MIXED, _mixed_sample, _mixed_start),
]
IDS = [s.name for s in SPECS]
# Keys are a property of fit, not of a covariance type: one Gaussian configuration suffices there.
KEYED = [s for s in SPECS if not s.name.startswith("gaussian-") or s.name == "gaussian-full"]


def _warm_fit(spec, x, start):
    return mx.fit(x, spec.family, K, key=None, init=start, max_iter=WARM_ITER, tol=0.0)


def _permuted(mixture, order):
    return jax.tree.map(lambda a: a[np.asarray(order)], mixture)


def _assert_monotone(result):
    history = np.append(np.asarray(result.history)[: int(result.n_iter)], float(result.log_likelihood))
    assert np.all(np.isfinite(history))
    assert np.min(np.diff(history)) >= -1e-9 * np.max(np.abs(history)), np.min(np.diff(history))


def _assert_close(a, b, rtol=1e-8):
    for left, right in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        left, right = np.asarray(left), np.asarray(right)
        np.testing.assert_allclose(left, right, rtol=rtol, atol=rtol * max(1.0, np.max(np.abs(right))))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@EXAMPLES
@given(seed=seeds)
def test_warm_started_em_is_monotone_and_equivariant(spec, seed):
    """Monotone history; finite responsibilities summing to one; row permutations change nothing,
    component permutations permute the result."""
    rng = np.random.default_rng(seed)
    x = spec.sample(rng)
    start = spec.start(rng, x)
    result = _warm_fit(spec, x, start)
    _assert_monotone(result)

    resp = np.asarray(result.mixture.responsibilities(x))
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)

    rows = rng.permutation(N)
    shuffled = _warm_fit(spec, x[rows], start)
    _assert_close(shuffled.mixture, result.mixture)
    np.testing.assert_allclose(np.asarray(shuffled.history), np.asarray(result.history), rtol=1e-10)

    order = rng.permutation(K)
    relabelled = _warm_fit(spec, x, _permuted(start, order))
    _assert_close(relabelled.mixture, _permuted(result.mixture, order))
    np.testing.assert_allclose(float(relabelled.log_likelihood), float(result.log_likelihood), rtol=1e-10)


@pytest.mark.parametrize("spec", KEYED, ids=[s.name for s in KEYED])
@EXAMPLES
@given(seed=seeds, key=st.integers(0, 2**31 - 2))
def test_keys_determine_the_fit(spec, seed, key):
    """The same key gives a bit-identical fit; another key another initialisation."""
    x = spec.sample(np.random.default_rng(seed))

    def keyed(k):
        return mx.fit(x, spec.family, K, key=jax.random.key(k), init=spec.init, max_iter=KEYED_ITER, tol=0.0)

    first, again, other = keyed(key), keyed(key), keyed(key + 1)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _assert_monotone(first)
    # history[0] is the log-likelihood of the initialisation itself
    assert float(first.history[0]) != float(other.history[0])


AFFINE_GROUPS = {
    # covariance type → the affine maps x ↦ A x + b under which its model class is closed
    "full": lambda rng: rng.normal(size=(2, 2)) + 2.0 * np.eye(2),
    "tied": lambda rng: rng.normal(size=(2, 2)) + 2.0 * np.eye(2),
    "diag": lambda rng: np.diag(rng.uniform(0.2, 5.0, 2) * rng.choice([-1.0, 1.0], 2)),
    "spherical": lambda rng: rng.uniform(0.2, 5.0) * np.linalg.qr(rng.normal(size=(2, 2)))[0],
}
GAUSSIANS = [s for s in SPECS if s.name.startswith("gaussian-")]


@pytest.mark.parametrize("spec", GAUSSIANS, ids=[s.name for s in GAUSSIANS])
@EXAMPLES
@given(seed=seeds)
def test_gaussian_fit_commutes_with_affine_maps(spec, seed):
    rng = np.random.default_rng(seed)
    covariance = spec.family.covariance
    x = spec.sample(rng)
    start = spec.start(rng, x)
    a = AFFINE_GROUPS[covariance](rng)
    b = rng.uniform(-50.0, 50.0, 2)

    def mapped(m):
        """The mixture of A x + b for x drawn from m, in the layout make_params takes."""
        means = np.asarray(m.params.means) @ a.T + b
        covs = np.asarray(m.params.covariances)
        if covariance == "full":
            layout = a @ covs @ a.T
        elif covariance == "tied":
            layout = a @ covs[0] @ a.T
        elif covariance == "diag":
            layout = covs * np.diag(a) ** 2
        else:
            layout = covs * abs(np.linalg.det(a))  # A = s·Q in 2-D: A σ²I Aᵀ = s² σ² I, s² = |det A|
        return mx.Mixture(np.asarray(m.weights), spec.family.make_params(means, layout), spec.family)

    result = _warm_fit(spec, x, start)
    image = _warm_fit(spec, x @ a.T + b, mapped(start))
    expected = mapped(result.mixture)
    _assert_close(image.mixture.weights, expected.weights, rtol=1e-7)
    _assert_close(image.mixture.params.means, expected.params.means, rtol=1e-7)
    _assert_close(image.mixture.params.covariances, expected.params.covariances, rtol=1e-6)
    log_det = np.log(abs(np.linalg.det(a)))
    np.testing.assert_allclose(float(image.log_likelihood), float(result.log_likelihood) - log_det, rtol=1e-8, atol=1e-8)
