"""Reference implementations and data shared by the tests (NumPy only), and a compilation recorder."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import pathlib
import stat

import jax
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal


def blobs(seed: int, n: int, means, scales, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows from a Gaussian mixture with isotropic components; returns (x, z)."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    weights = np.full(k, 1.0 / k) if weights is None else np.asarray(weights)
    z = rng.choice(k, size=n, p=weights)
    x = means[z] + rng.standard_normal((n, d)) * np.asarray(scales, dtype=np.float64)[z, None]
    return x, z


def synthetic_5x8(seed: int = 0, n: int = 1500) -> np.ndarray:
    """A 5-component, 8-dimensional data set with correlated, unequal clusters."""
    rng = np.random.default_rng(seed)
    k, d = 5, 8
    means = rng.normal(0.0, 6.0, size=(k, d))
    factors = rng.normal(0.0, 1.0, size=(k, d, d)) / np.sqrt(d) + np.eye(d) * rng.uniform(0.5, 2.0, size=(k, 1, 1))
    z = rng.choice(k, size=n, p=[0.1, 0.15, 0.2, 0.25, 0.3])
    eps = rng.standard_normal((n, d))
    return means[z] + np.einsum("nd,ned->ne", eps, factors[z])


def dense_covariances(covariance: str, covs, k: int, d: int) -> np.ndarray:
    """Covariances in any of the four layouts expanded to (K, D, D)."""
    covs = np.asarray(covs)
    if covariance == "full":
        return covs
    if covariance == "tied":
        return np.broadcast_to(covs, (k, d, d))
    if covariance == "diag":
        return np.stack([np.diag(c) for c in covs])
    return np.stack([np.eye(d) * c for c in covs])


def mixture_log_prob(x, weights, means, dense_covs) -> np.ndarray:
    """(N,) log p(x) of a Gaussian mixture, with SciPy's densities."""
    comp = np.stack(
        [multivariate_normal(m, c).logpdf(x) for m, c in zip(means, dense_covs)], axis=1
    ) + np.log(weights)[None, :]
    return logsumexp(comp, axis=1)


def responsibilities(x, weights, means, dense_covs) -> np.ndarray:
    comp = np.stack(
        [multivariate_normal(m, c).logpdf(x) for m, c in zip(means, dense_covs)], axis=1
    ) + np.log(weights)[None, :]
    return np.exp(comp - logsumexp(comp, axis=1, keepdims=True))


def weighted_moments_two_pass(x, resp):
    """Float64 two-pass weighted means and covariances, one per column of resp."""
    x = np.asarray(x, dtype=np.float64)
    nk = resp.sum(axis=0)
    means = resp.T @ x / nk[:, None]
    covs = np.stack(
        [((x - m) * r[:, None]).T @ (x - m) / n for m, r, n in zip(means, resp.T, nk)]
    )
    return nk, means, covs


def assert_recovered(result, truth, weights, variance, n, n_se, distance=lambda a, b: (a - b) ** 2):
    """Fitted parameters and weights within ``n_se`` standard errors of the truth.

    Components are matched by the permutation closest to the truth on the first
    parameter (under ``distance``); standard errors come from ``variance`` (per
    observation, per leaf) and the expected count N·wₖ of each component.
    """
    est = {leaf: np.asarray(v) for leaf, v in result.mixture.params._asdict().items()}
    first = next(iter(truth))
    perm = list(min(
        itertools.permutations(range(len(weights))),
        key=lambda p: np.sum(distance(est[first][list(p)], truth[first])),
    ))
    n_k = n * weights
    for leaf, var in variance.items():
        se = np.sqrt(var / n_k[:, None])
        np.testing.assert_array_less(np.abs(est[leaf][perm] - truth[leaf]), n_se * se)
    fitted = np.asarray(result.mixture.weights)[perm]
    np.testing.assert_array_less(np.abs(fitted - weights), n_se * np.sqrt(weights * (1 - weights) / n))


def assert_monotone(result, n_iter, rel=1e-9):
    """A fit run for exactly ``n_iter`` iterations whose history never decreases."""
    history = np.asarray(result.history)
    assert int(result.n_iter) == n_iter and np.all(np.isfinite(history))
    scale = max(1.0, float(np.max(np.abs(history))))
    assert np.all(np.diff(history) >= -rel * scale)
    assert float(result.log_likelihood) >= history[-1] - rel * scale


def slow_where(values, slow):
    """``values`` for ``pytest.mark.parametrize``, those in ``slow`` marked ``slow`` (the measured slow cases)."""
    return [pytest.param(v, marks=pytest.mark.slow) if v in slow else v for v in values]


# The event JAX records for every XLA compilation (jax._src.dispatch.BACKEND_COMPILE_EVENT).
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def recording_compilations():
    """Yields a list that gets one entry (the event's keyword arguments) per XLA compilation in the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            events.append(kwargs)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def non_regular_path(tmp, kind):
    """A path under ``tmp`` that is not a regular file: "fifo", "symlink" (to ``precious``, holding
    "keep"), "dangling-symlink" or "device" (a character device like /dev/full; skips without root)."""
    path = tmp / f"special-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (tmp / "precious").write_text("keep")
        os.symlink(tmp / "precious", path)
    elif kind == "dangling-symlink":
        os.symlink(tmp / "absent", path)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # like /dev/full
    return path


MCLUST_REFERENCE = pathlib.Path(__file__).resolve().parent / "mclust" / "reference.json"


@functools.cache
def mclust_reference() -> dict:
    """tests/mclust/reference.json: R mclust's fits (see tests/mclust/README.md)."""
    with open(MCLUST_REFERENCE) as f:
        return json.load(f)


@functools.cache
def mclust_data(name: str) -> np.ndarray:
    """The data set ``name`` of the mclust reference, as mclust read it (float64)."""
    path = MCLUST_REFERENCE.parent.parent.parent / mclust_reference()["datasets"][name]["path"]
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
