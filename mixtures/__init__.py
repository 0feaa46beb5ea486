"""Mixture models fitted by expectation–maximisation, on JAX.

>>> import jax, mixtures as mx
>>> x = mx.datasets.load_old_faithful()
>>> result = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0))
>>> result.mixture.predict(x).shape
(272,)
"""

from mixtures import _xla

_xla.choose_cpu_fusion()

from mixtures import datasets, online
from mixtures.bernoulli import Bernoulli, BernoulliParams
from mixtures.categorical import Categorical, CategoricalParams
from mixtures.engine import FitResult, em_step
from mixtures.expfam import ExponentialFamily
from mixtures.exponential import Exponential, ExponentialParams
from mixtures.family import Family
from mixtures.fitting import fit
from mixtures.gamma import Gamma, GammaParams
from mixtures.gaussian import Gaussian, GaussianParams, GaussianStats
from mixtures.gradient import GradientFamily
from mixtures.independent import Independent
from mixtures.io import ModelFileError, load, save
from mixtures.mixture import Mixture
from mixtures.online import fit_online
from mixtures._progress import Progress
from mixtures.poisson import Poisson, PoissonParams
from mixtures.priors import ConjugatePrior, DirichletPrior, GaussianPrior, Prior
from mixtures.selection import Selection, select
from mixtures.streaming import fit_stream
from mixtures.student_t import StudentT, StudentTParams
from mixtures.von_mises_fisher import VonMisesFisher, VonMisesFisherParams

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BernoulliParams",
    "Categorical",
    "CategoricalParams",
    "ConjugatePrior",
    "DirichletPrior",
    "Exponential",
    "ExponentialFamily",
    "ExponentialParams",
    "Family",
    "FitResult",
    "Gamma",
    "GammaParams",
    "Gaussian",
    "GaussianParams",
    "GaussianPrior",
    "GaussianStats",
    "GradientFamily",
    "Independent",
    "Mixture",
    "ModelFileError",
    "Poisson",
    "PoissonParams",
    "Prior",
    "Progress",
    "Selection",
    "StudentT",
    "StudentTParams",
    "VonMisesFisher",
    "VonMisesFisherParams",
    "datasets",
    "em_step",
    "fit",
    "fit_online",
    "fit_stream",
    "load",
    "online",
    "save",
    "select",
]
