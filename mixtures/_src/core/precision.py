"""Float64 arithmetic for float32 data: which dtype, and whether a trace may use it.

A family may compute some sums of float32 rows in float64 where the backend
runs float64 at a useful rate (a CPU: about half its float32 rate); the
Gaussian's matrix-product pass does (``families/gaussian/fast.py``). It does
so only where JAX's x64 mode is on: with it off (JAX's default) float64
arrays exist only inside a scoped ``jax.enable_x64``, and a program traced
partly inside one is fragile (a ``while_loop``, ``cond`` or ``vmap``
batched outside the scope turns its float64 into float32, and jitted helpers
traced under both settings can meet in one program with two result types).
Turning x64 on changes no array the library makes for float32 data: they keep
their dtypes.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["wide_available", "wider"]


def wider(dtype) -> np.dtype:
    """The dtype of a family's wide sums for data of ``dtype``: float64 for float32 on a CPU, else ``dtype``.

    A GPU's float64 rate is often a small fraction of its float32 rate:
    there float32 stays float32.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.precision import wider
      >>> wider(np.float64)
      dtype('float64')
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 and jax.default_backend() == "cpu":
        return np.dtype(np.float64)
    return dtype


def wide_available(dtype) -> bool:
    """Whether code traced now may compute in :func:`wider` (``dtype``): nothing wider is asked, or x64 is on.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.precision import wide_available
      >>> wide_available(np.float64)
      True
    """
    return wider(dtype) == np.dtype(dtype) or bool(jax.config.jax_enable_x64)
