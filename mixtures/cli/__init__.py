"""The ``mixtures`` command line: ``demo``, ``fit``, ``predict`` and ``info``.

Every command validates its input before anything is compiled and reports a
problem as one line on standard error, ``mixtures: error: ...``, naming the
file and, for data, the line (CSV) or index (NumPy) and column; ``--debug``
shows the traceback instead. Exit status: 0 on success, 2 for invalid input
(options, data, model files), 1 when a file cannot be read or written.
``docs/cli.md`` describes every command with examples.

The library is imported inside the commands, so ``mixtures --help`` is fast
and a missing optional extra (matplotlib, tqdm) only matters to the command
that uses it. One module per command (:mod:`~mixtures.cli.demo`,
:mod:`~mixtures.cli.fit`, :mod:`~mixtures.cli.predict`,
:mod:`~mixtures.cli.info`); data files in :mod:`~mixtures.cli.data`, printed
tables in :mod:`~mixtures.cli.tables`, the progress bar in
:mod:`~mixtures.cli.progress`, the families and their options, learnt from
the family registry, in :mod:`~mixtures.cli.families`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from mixtures.cli import demo, fit, info, predict
from mixtures.cli.data import Data, read_data
from mixtures.cli.errors import CommandError
from mixtures.cli.progress import ProgressReporter
from mixtures.cli.tables import family_label

__all__ = [
    "CommandError", "Data", "ProgressReporter", "compilation_cache_dir", "family_label", "main", "read_data",
    "use_compilation_cache",
]

COMMANDS = (demo, fit, predict, info)


class _Parser(argparse.ArgumentParser):
    """argparse, reporting usage errors as one ``CommandError`` line instead of usage text."""

    def error(self, message):
        raise CommandError(message)


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mixtures`` command (usage errors raise :class:`CommandError`)."""
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    parser = _Parser(prog="mixtures", description="Mixture models fitted by EM, on JAX.", parents=[debug])
    parser.set_defaults(debug=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,fit,predict,info}")
    for command in COMMANDS:
        command.add_parser(sub, [debug])
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mixtures`` command.

    Args:
      argv: the arguments after the program name. None (the default):
        ``sys.argv[1:]``, and the process is taken to be the command's own,
        so it keeps its compiled programs in a per-user cache
        (:func:`use_compilation_cache`); a caller that passes ``argv``
        keeps its own JAX settings.

    Returns:
      The exit status: 0 on success, 2 for invalid input, 1 when a file
      cannot be read or written, 130 when interrupted, 141 (quietly) when
      the reader of standard output closed it; errors are one line on
      standard error.

    Example:
      >>> from mixtures.cli import main
      >>> main(["demo", "--components", "0"])  # the error goes to standard error
      2
    """
    from mixtures import disable_xla_cpu_fusion

    disable_xla_cpu_fusion(strict=False)  # the measured faster setting; in-process callers keep theirs
    if argv is None:  # run as the program: the process is the command's own
        use_compilation_cache()
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    with _interrupts_noted():
        return _run(argv, debug)


CACHE_VARIABLE = "MIXTURES_COMPILATION_CACHE"


def compilation_cache_dir() -> str | None:
    """The directory :func:`use_compilation_cache` keeps compiled programs in, or None when it is switched off.

    ``$MIXTURES_COMPILATION_CACHE`` when it names a directory; none when it
    is ``off`` (or ``0``, ``false``, ``no``, in any case); otherwise
    ``mixtures/jax`` under ``$XDG_CACHE_HOME`` (when absolute) or ``~/.cache``.

    Example:
      >>> import os
      >>> from mixtures.cli import compilation_cache_dir
      >>> os.environ["MIXTURES_COMPILATION_CACHE"] = "off"
      >>> compilation_cache_dir() is None
      True
      >>> del os.environ["MIXTURES_COMPILATION_CACHE"]
    """
    setting = os.environ.get(CACHE_VARIABLE, "").strip()
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return os.path.expanduser(setting)
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: ignored, as the XDG specification says
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mixtures", "jax")


def use_compilation_cache() -> str | None:
    """Keeps the command's compiled programs in JAX's persistent compilation cache; returns its directory.

    A command runs in a new process each time, and most of a small fit's
    time is compilation: with the cache, a second run reads the programs
    back. The directory is :func:`compilation_cache_dir`'s. Nothing is
    changed when JAX already has a cache directory (``JAX_COMPILATION_CACHE_DIR``
    or the ``jax_compilation_cache_dir`` setting: the user's choice), when
    the cache is switched off, or when the directory cannot be created or
    written (then the command compiles as without a cache). Every program
    is kept, however quickly it compiled, unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = compilation_cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


@contextlib.contextmanager
def _interrupts_noted():
    """Ctrl-C raises as usual, and is also noted, so a fit honours one that Python dropped (in a GC callback)."""
    from mixtures._src.fitting import segments

    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, segments.handle_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _run(argv, debug: bool) -> int:
    try:
        args = _build_parser().parse_args(argv)
        status = args.run(args)
        sys.stdout.flush()  # a reader that left early (`| head`) shows here, not as an error at exit
        return status
    except BrokenPipeError:
        # The reader of standard output closed it: stop quietly, as SIGPIPE stops other tools.
        _discard_stdout()
        return 141  # 128 + SIGPIPE: what a shell reports for a tool its closed pipe stopped
    except Exception as e:
        if debug:
            raise
        status, message = _describe(e)
        print(f"mixtures: error: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt as interrupt:
        # What was done (the notes a fit adds: iterations run, the checkpoint); nothing is written.
        done = " ".join(getattr(interrupt, "__notes__", []))
        print(f"mixtures: interrupted{'; ' + done if done else ''}", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Points standard output at the null device, so the interpreter's final flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (an in-process caller's buffer): nothing is flushed at exit
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def _describe(error: Exception) -> tuple[int, str]:
    """(exit status, one line) for an error."""
    if isinstance(error, CommandError):
        status, message = error.status, str(error)
    elif isinstance(error, OSError):
        where = f" {error.filename!r}" if error.filename else ""
        status, message = 1, f"cannot access{where}: {error.strerror or error}"
    elif isinstance(error, (ValueError, TypeError)):
        status, message = 2, str(error)
    else:
        status, message = 1, f"{type(error).__name__}: {error} (run with --debug for the traceback)"
    return status, " ".join(message.split())
