"""Families of one's own, written as docs/custom-family.md teaches, shared by the tests."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

import mixtures as mx


class ScaleParams(NamedTuple):
    scales: jax.Array  # (K, D)


class RayleighForm(mx.ExponentialFamily):
    """Rayleigh components in exponential-family form, as docs/custom-family.md writes them (no domain check)."""

    def sufficient_stats(self, x):
        return x**2

    def log_base_measure(self, x):
        return jnp.sum(jnp.log(x))

    def log_partition(self, natural):
        return -jnp.sum(jnp.log(-2.0 * natural))

    def to_natural(self, params):
        return -0.5 / params.scales**2

    def from_natural(self, natural):
        return ScaleParams(jnp.sqrt(-0.5 / natural))

    def initial_natural(self, mean):
        return -jnp.ones_like(mean)

    def sample(self, params, key):
        u = jax.random.uniform(key, params.scales.shape, params.scales.dtype, minval=1e-12)
        return params.scales * jnp.sqrt(-2.0 * jnp.log(u))

    def n_features(self, params):
        return params.scales.shape[-1]

    def n_free_parameters(self, n_components, n_features):
        return n_components * n_features
