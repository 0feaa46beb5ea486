"""Pieces the commands share: option checks, output files, figures, JAX's x64 flag, model files."""

from __future__ import annotations

import contextlib
import math
import os
import sys

from mixtures.cli.errors import CommandError

__all__ = [
    "PLOT_HINT", "bic", "bounded", "check_plot_format", "check_writable", "components_in_range", "figure",
    "load_model", "positive", "require_matplotlib", "wants_progress", "write_output", "x64",
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


def check_writable(path: str, option: str, inputs=()) -> None:
    """Fails early, before a long fit, if ``path`` cannot or must not be written.

    Refused: a directory, a symbolic link (never followed), a FIFO, a socket
    or a device node, a path in a missing or read-only directory, and any of
    the command's ``inputs`` (the data file, the model file): an output never
    replaces what the command reads. Writes themselves go through
    :func:`write_output`, atomically.
    """
    from mixtures._src.core import files

    try:
        files.check_output_path(path, option)
    except IsADirectoryError:
        raise CommandError(f"{option}: {path!r} is a directory; give a file name.", status=1) from None
    except ValueError as e:
        raise CommandError(str(e).replace(f"`{option}`", option)) from None
    for source in inputs:
        if source is not None and files.same_file(path, source):
            raise CommandError(
                f"{option}: {path!r} is the input file {source!r}; writing there would destroy it. "
                "Give another file name."
            )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: the directory of {path!r} does not exist.", status=1)
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{option}: cannot write to the directory of {path!r} (permission denied).", status=1)


def write_output(path: str, option: str, write) -> None:
    """Writes ``path`` atomically (temporary file, fsync, rename); ``write(f)`` fills a binary file."""
    from mixtures._src.core import files

    try:
        files.write_atomically(path, write, option)
    except ValueError as e:
        raise CommandError(str(e).replace(f"`{option}`", option)) from None


def check_plot_format(path: str, option: str) -> str:
    """The figure format matplotlib infers from ``path``'s extension; refused early if it has none it knows."""
    from matplotlib.backend_bases import FigureCanvasBase

    known = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in known:
        raise CommandError(
            f"{option}: {path!r} has the extension {extension or 'none'!r}; figures are written as one of "
            f"{', '.join(sorted(known))} (chosen by the extension)."
        )
    return extension


def bounded(value: int, option: str, low: int, high: int, why: str) -> int:
    """``value`` if low ≤ value ≤ high, else a ``CommandError`` naming the option, the range and why."""
    if not low <= value <= high:
        raise CommandError(f"{option} must be between {low} and {high} ({why}); received {value}.")
    return value


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
        model = mx.load(path)
    except mx.ModelFileError as e:
        raise CommandError(f"{path!r} is not a usable model file: {e.reason}.") from None
    if isinstance(model, mx.VariationalMixture):
        raise CommandError(
            f"{path!r} holds a variational posterior (a VariationalMixture), not a fitted mixture; the command "
            "line reads mixtures: save the posterior-mean mixture with mx.save(path, result.mixture)."
        )
    return model
