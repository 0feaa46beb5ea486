"""Pieces the commands share: option checks, output files, figures, JAX's x64 flag, model files."""

from __future__ import annotations

import contextlib
import math
import os
import sys

from mixtures.cli.errors import CommandError

__all__ = [
    "PLOT_HINT", "bic", "check_writable", "components_in_range", "figure", "load_model", "positive",
    "require_matplotlib", "wants_progress", "x64",
]

PLOT_HINT = "install matplotlib for figures: pip install 'jax-mixtures[plot]'"


@contextlib.contextmanager
def x64(enabled: bool):
    """JAX's x64 flag set to ``enabled`` for the block, then restored."""
    import jax

    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def bic(log_likelihood: float, n: int, n_parameters: int) -> float:
    return -2.0 * n * log_likelihood + n_parameters * math.log(n)


def require_matplotlib(option: str):
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise CommandError(f"{option} needs matplotlib; {PLOT_HINT}.") from None


def check_writable(path: str, option: str) -> None:
    """Fails early, before a long fit, if ``path`` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path!r} is a directory; give a file name.", status=1)
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: the directory of {path!r} does not exist.", status=1)
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{option}: cannot write to the directory of {path!r} (permission denied).", status=1)


def figure(panels: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * panels, 4.8), layout="constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def positive(value: int, option: str) -> int:
    if value < 1:
        raise CommandError(f"{option} must be a positive integer; received {value}.")
    return value


def components_in_range(k: int, n: int, source: str) -> None:
    if k < 1:
        raise CommandError(f"--components must be a positive integer or 'auto'; received {k}.")
    if k > n:
        raise CommandError(f"--components must be at most the number of rows, N = {n} in {source}; received {k}.")


def wants_progress(args) -> bool:
    if args.progress is not None:
        return args.progress
    return sys.stderr.isatty()


def load_model(path: str):
    import mixtures as mx

    try:
        return mx.load(path)
    except mx.ModelFileError as e:
        raise CommandError(f"{path!r} is not a usable model file: {e.reason}.") from None
