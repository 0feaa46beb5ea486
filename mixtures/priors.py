"""Priors for MAP-EM: conjugate priors on the component parameters and a Dirichlet prior on the weights.

See ``docs/priors.md``.
"""

from mixtures._src.core.priors import ConjugatePrior, DirichletPrior, DirichletProcessPrior, Prior
from mixtures._src.families.gaussian.prior import GaussianPrior

__all__ = ["ConjugatePrior", "DirichletPrior", "DirichletProcessPrior", "GaussianPrior", "Prior"]
