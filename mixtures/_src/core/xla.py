"""An opt-in XLA:CPU setting: the "YNN" fusion off.

jaxlib 0.10 fuses elementwise work into matrix products on the CPU by default
(its "YNN" fusion). On the machines the benchmarks ran on, EM iterations ran
1.2–4× faster with that fusion off, although a bare matrix product ran 20–35%
slower (docs/performance.md has the measurements). The library never changes
the setting by itself: ``import mixtures`` leaves ``XLA_FLAGS`` as it is. A
program opts in with ``disable_xla_cpu_fusion``, or by setting the
environment variable ``MIXTURES_XLA_CPU_FUSION=off`` before it imports
mixtures. Either way the setting is appended to ``XLA_FLAGS``, which XLA reads
once, when JAX starts its backends; it then holds for the whole process,
including other JAX code in it, and for subprocesses that inherit the
environment.

JAX has no public query for "have the backends started". The check here uses
the public config option ``jax_num_cpu_devices``, which JAX refuses to change
(``RuntimeError``) once the backends have started: the option is set to
another value and, when that is accepted, set back at once.
"""

from __future__ import annotations

import os
import warnings

import jax
import jaxlib

__all__ = ["ENV_VAR", "FUSION_OFF", "disable_xla_cpu_fusion", "apply_environment"]

FUSION_OFF = "--xla_cpu_experimental_ynn_fusion_type="
ENV_VAR = "MIXTURES_XLA_CPU_FUSION"
_SETTING = "--xla_cpu_experimental_ynn_fusion_type"
# jaxlib versions where the flag is known to exist: XLA aborts on a flag it does not know.
_KNOWN = ((0, 10),)


def _known_jaxlib() -> bool:
    return tuple(int(part) for part in jaxlib.__version__.split(".")[:2]) in _KNOWN


def _backends_started() -> bool:
    current = jax.config.jax_num_cpu_devices
    try:
        jax.config.update("jax_num_cpu_devices", current + 1 if current >= 0 else 1)
    except RuntimeError:
        return True
    jax.config.update("jax_num_cpu_devices", current)
    return False


def _fusion_in_flags(flags: str) -> str | None:
    """The value ``XLA_FLAGS`` gives the fusion setting (the last one wins), or None."""
    value = None
    for flag in flags.split():
        name, _, rest = flag.partition("=")
        if name == _SETTING:
            value = rest
    return value


def disable_xla_cpu_fusion(*, strict: bool = True) -> bool:
    """Turns XLA:CPU's "YNN" fusion off for this process, before JAX starts.

    Appends ``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list: off) to
    the environment variable ``XLA_FLAGS``. XLA reads that variable once, when
    JAX starts its backends (the first array, computation or device query), so
    call this right after ``import mixtures``, before any JAX work. The setting
    holds for the whole process, including other JAX code, and for subprocesses
    that inherit the environment. Setting ``MIXTURES_XLA_CPU_FUSION=off`` before
    ``import mixtures`` does the same.

    Nothing is changed when ``XLA_FLAGS`` already names the setting (an
    explicit choice wins; the return value says whether it chose off), nor when
    jaxlib is not a 0.10 release (False: other versions may not know the flag,
    and XLA aborts on flags it does not know).

    Args:
      strict: what to do when JAX's backends have already started, so the
        setting could no longer take effect: raise (True, the default) or
        leave ``XLA_FLAGS`` alone and return False.

    Returns:
      Whether the fusion will be off when the backends start: True when this
      call set it or ``XLA_FLAGS`` already did.

    Raises:
      RuntimeError: JAX's backends have already started and ``strict`` is True.

    Example:
      At the start of a program, before its first JAX computation (not run as
      a doctest: in the test process it would change the process's setting):

      >>> import mixtures as mx
      >>> mx.disable_xla_cpu_fusion()  # doctest: +SKIP
      True
    """
    flags = os.environ.get("XLA_FLAGS", "")
    chosen = _fusion_in_flags(flags)
    if chosen is not None:
        return chosen == ""
    if not _known_jaxlib():
        return False
    if _backends_started():
        if strict:
            raise RuntimeError(
                "disable_xla_cpu_fusion() was called after JAX started its backends, so XLA_FLAGS "
                "is no longer read; call it right after `import mixtures`, before any JAX "
                f"computation, or set {ENV_VAR}=off (or XLA_FLAGS={FUSION_OFF}) before starting Python"
            )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FUSION_OFF}".strip()
    return True


def apply_environment() -> None:
    """Applies ``MIXTURES_XLA_CPU_FUSION``: ``off`` calls ``disable_xla_cpu_fusion``.

    Unset, empty, ``on`` and ``default`` leave XLA's default alone; any other
    value raises ``ValueError``. When the backends have already started, a
    ``RuntimeWarning`` says the variable could not take effect.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in ("", "on", "default"):
        return
    if value != "off":
        raise ValueError(
            f"environment variable {ENV_VAR} is {os.environ[ENV_VAR]!r}; expected 'off', 'on', "
            "'default' or empty"
        )
    if not disable_xla_cpu_fusion(strict=False) and _fusion_in_flags(os.environ.get("XLA_FLAGS", "")) is None:
        reason = (
            "JAX had already started its backends when mixtures was imported"
            if _known_jaxlib()
            else f"jaxlib {jaxlib.__version__} is not a version where the flag is known to exist"
        )
        warnings.warn(f"{ENV_VAR}=off did not take effect: {reason}", RuntimeWarning, stacklevel=3)
