"""The EM engine, for researchers who run EM step by step: accumulate, maximise, loop.

Everything :func:`mixtures.fit` does is built from these pure, jit- and
vmap-compatible functions. Their static options travel as one
:class:`EMOptions` and the per-row arrays as one :class:`Rows` pytree; see
``docs/design.md`` for the contract they hold a family to.
"""

from mixtures._src.core.posterior import Sums
from mixtures._src.engine.em import accumulate, fit_loop, init_from_points, log_prior, maximize, step
from mixtures._src.engine.options import EMOptions, Rows

__all__ = ["EMOptions", "Rows", "Sums", "accumulate", "fit_loop", "init_from_points", "log_prior", "maximize", "step"]
