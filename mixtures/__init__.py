"""Mixture models fitted by expectation–maximisation, on JAX.

>>> import jax, mixtures as mx
>>> x = mx.datasets.load_old_faithful()
>>> result = mx.fit(x, mx.Gaussian("full"), n_components=2, key=jax.random.key(0))
>>> result.mixture.predict(x).shape
(272,)
"""

from mixtures._src.core import xla as _xla

_xla.apply_environment()

from mixtures import datasets, online, priors
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.priors import ConjugatePrior, DirichletPrior, DirichletProcessPrior, Prior
from mixtures._src.core.progress import Progress
from mixtures._src.core.variational import VariationalMixture
from mixtures._src.core.registry import register_family
from mixtures._src.core.xla import disable_xla_cpu_fusion
from mixtures._src.engine.em import FitResult
from mixtures._src.families.bernoulli import Bernoulli, BernoulliParams
from mixtures._src.families.categorical import Categorical, CategoricalParams
from mixtures._src.families.expfam import ExponentialFamily
from mixtures._src.families.exponential import Exponential, ExponentialParams
from mixtures._src.families.gamma import Gamma, GammaParams
from mixtures._src.families.gaussian.family import Gaussian, GaussianParams, GaussianStats
from mixtures._src.families.gaussian.prior import GaussianPrior
from mixtures._src.families.gradient import GradientFamily
from mixtures._src.families.independent import Independent
from mixtures._src.families.poisson import Poisson, PoissonParams
from mixtures._src.families.student_t import StudentT, StudentTParams
from mixtures._src.families.von_mises_fisher import VonMisesFisher, VonMisesFisherParams
from mixtures._src.fitting.fit import em_step, fit
from mixtures._src.fitting.online import fit_online
from mixtures._src.fitting.selection import Selection, SelectionGrid, select
from mixtures._src.fitting.streaming import fit_stream
from mixtures._src.fitting.variational import VariationalResult, fit_variational
from mixtures._src.fitting.variational_stream import fit_variational_stream
from mixtures.io import ModelFileError, load, save

__version__ = "0.1.0"

__all__ = [
    "Bernoulli",
    "BernoulliParams",
    "Categorical",
    "CategoricalParams",
    "ConjugatePrior",
    "DirichletPrior",
    "DirichletProcessPrior",
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
    "SelectionGrid",
    "StudentT",
    "StudentTParams",
    "VonMisesFisher",
    "VariationalMixture",
    "VariationalResult",
    "VonMisesFisherParams",
    "datasets",
    "disable_xla_cpu_fusion",
    "em_step",
    "fit",
    "fit_online",
    "fit_stream",
    "fit_variational",
    "fit_variational_stream",
    "load",
    "online",
    "priors",
    "register_family",
    "save",
    "select",
]
