"""Priors for MAP-EM: conjugate priors on the component parameters and a Dirichlet prior on the weights.

See ``docs/priors.md``.
"""

from mixtures._src.core.priors import ConjugatePrior, DirichletPrior, GaussianPrior, Prior

__all__ = ["ConjugatePrior", "DirichletPrior", "GaussianPrior", "Prior"]
