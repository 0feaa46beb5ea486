"""Mixture models fitted by expectation–maximisation, on JAX.

>>> import jax, mixtures as mx
>>> x = mx.datasets.load_old_faithful()
>>> result = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0))
>>> result.mixture.predict(x).shape
(272,)
"""

from mixtures import datasets
from mixtures.engine import FitResult, em_step
from mixtures.family import Family
from mixtures.fitting import fit
from mixtures.gaussian import Gaussian, GaussianParams, GaussianStats
from mixtures.mixture import Mixture

__version__ = "0.1.0"

__all__ = [
    "FitResult",
    "Family",
    "Gaussian",
    "GaussianParams",
    "GaussianStats",
    "Mixture",
    "datasets",
    "em_step",
    "fit",
]
