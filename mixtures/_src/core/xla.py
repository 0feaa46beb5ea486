"""The XLA:CPU setting the library chooses when it is imported.

jaxlib 0.10 fuses elementwise work into matrix products on the CPU by
default (its "YNN" fusion). On the machines the benchmarks ran on, EM
iterations ran about twice as fast with that fusion off, in float32 and
float64 (docs/performance.md has the measurements). ``import mixtures``
therefore appends ``--xla_cpu_experimental_ynn_fusion_type=`` (off) to
``XLA_FLAGS``, but only when all of these hold:

* ``XLA_FLAGS`` does not already mention the setting (an explicit choice wins);
* the environment variable ``MIXTURES_KEEP_XLA_FLAGS`` is unset or empty;
* jaxlib is a 0.10 release (the versions where the flag is known to exist:
  XLA aborts on flags it does not know);
* JAX has not started its backends yet (XLA reads the flags once, then).

It changes the setting for the whole process, including other JAX code in
it, and for subprocesses that inherit the environment.
"""

from __future__ import annotations

import os

__all__ = ["FUSION_OFF", "choose_cpu_fusion"]

FUSION_OFF = "--xla_cpu_experimental_ynn_fusion_type="
_SETTING = "xla_cpu_experimental_ynn_fusion_type"


def choose_cpu_fusion() -> bool:
    """Turns the CPU fusion off when the conditions above hold; returns whether it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _SETTING in flags or os.environ.get("MIXTURES_KEEP_XLA_FLAGS"):
        return False
    try:
        import jaxlib
        from jax._src import xla_bridge

        major, minor = (int(part) for part in jaxlib.__version__.split(".")[:2])
        if (major, minor) != (0, 10) or xla_bridge.backends_are_initialized():
            return False
    except Exception:  # an unknown jaxlib layout: leave XLA's defaults alone
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FUSION_OFF}".strip()
    return True
