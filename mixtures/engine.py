"""The EM engine, for researchers who run EM step by step: accumulate, maximise, loop.

Everything :func:`mixtures.fit` does is built from these pure, jit- and
vmap-compatible functions; see ``docs/design.md`` for the contract they
hold a family to.
"""

from mixtures._src.engine.em import Sums, accumulate, fit_loop, init_from_points, log_prior, maximize

__all__ = ["Sums", "accumulate", "fit_loop", "init_from_points", "log_prior", "maximize"]
