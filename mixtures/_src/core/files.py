"""Files the library reads and writes: only regular files, written atomically, never through a link.

Shared by :func:`mixtures.save`, :func:`mixtures.load` and the command line.
An output path must be absent or a regular file: a directory, a symbolic link
(never followed), a FIFO, a socket or a device node is refused, so nothing
but a file the user wrote is ever replaced. A write goes to a temporary file
in the same directory (``.NAME.RANDOM.tmp``), is flushed to disk
(``fsync``) and renamed over the path (``os.replace``): the old file is
replaced whole or not at all. Errors name the user's path, never the
temporary one. An input must be a regular file (symbolic links to one are
followed), so a FIFO or ``/dev/zero`` is refused instead of blocking or
filling memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

__all__ = ["as_path", "check_input_file", "check_output_path", "same_file", "write_atomically"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def as_path(path, name: str) -> str:
    """``os.fspath(path)``, or a ``TypeError`` naming the argument for anything but a str, bytes or PathLike.

    Example:
      >>> from mixtures._src.core.files import as_path
      >>> as_path(None, "path")
      Traceback (most recent call last):
      ...
      TypeError: `path` must be a file path (str, bytes or os.PathLike); received None.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"`{name}` must be a file path (str, bytes or os.PathLike); received {path!r:.100}.")
    path = os.fspath(path)
    if not isinstance(path, (str, bytes)) or len(path) == 0:
        raise ValueError(f"`{name}` must be a non-empty file path; received {path!r:.100}.")
    return path


def check_output_path(path, name: str) -> None:
    """Refuses an output path that exists and is not a regular file (a symbolic link is not followed).

    Raises:
      IsADirectoryError: if ``path`` is a directory.
      ValueError: if it is a symbolic link, a FIFO, a socket or a device node.

    Example:
      >>> import tempfile
      >>> from mixtures._src.core.files import check_output_path
      >>> check_output_path("/dev/null", "--out")
      Traceback (most recent call last):
      ...
      ValueError: `--out`: '/dev/null' is a character device, not a regular file; only a regular file is ever replaced.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"`{name}` is a directory; give a file name (a directory is never replaced)", path)
    how = (
        "symbolic links are never followed or replaced: give the target's own path, or remove the link"
        if stat.S_ISLNK(mode)
        else "only a regular file is ever replaced"
    )
    raise ValueError(f"`{name}`: {os.fsdecode(path)!r} is {_kind(mode)}, not a regular file; {how}.")


def check_input_file(path, name: str) -> os.stat_result:
    """The ``os.stat`` of an input, which must be a regular file (a symbolic link to one is followed).

    Raises:
      FileNotFoundError, PermissionError: as ``os.stat`` does.
      ValueError: naming ``name`` for a directory, FIFO, socket or device.

    Example:
      >>> from mixtures._src.core.files import check_input_file
      >>> check_input_file("/dev/zero", "DATA")
      Traceback (most recent call last):
      ...
      ValueError: `DATA`: '/dev/zero' is a character device, not a regular file; give a file.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"`{name}`: {os.fsdecode(path)!r} is {_kind(info.st_mode)}, not a regular file; give a file.")
    return info


def same_file(a, b) -> bool:
    """Whether the paths name the same existing file (after following links), or are the same path.

    Example:
      >>> from mixtures._src.core.files import same_file
      >>> same_file("/tmp/../tmp/x", "/tmp/x")
      True
    """
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def write_atomically(path, write, name: str = "path") -> None:
    """Writes a file whole or not at all: ``write(f)`` fills a temporary binary file, renamed over ``path``.

    ``path`` is checked with :func:`check_output_path` first. The temporary
    file is created next to ``path`` (mode 0o666 less the umask), flushed with
    ``fsync`` and renamed with ``os.replace``; on any failure it is removed
    and ``path`` is unchanged. An ``OSError`` names ``path``.

    Args:
      path: the destination.
      write: called with the temporary file, open for binary writing.
      name: the argument's name, for messages.

    Example:
      >>> import os, tempfile
      >>> from mixtures._src.core.files import write_atomically
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     write_atomically(os.path.join(tmp, "a.txt"), lambda f: f.write(b"hello"))
      ...     open(os.path.join(tmp, "a.txt"), "rb").read(), os.listdir(tmp)
      (b'hello', ['a.txt'])
    """
    check_output_path(path, name)
    directory, base = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as e:
        raise _naming(e, path) from None
    try:
        try:
            with os.fdopen(fd, "wb", closefd=True) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise _naming(e, path) from e
        check_output_path(path, name)  # again, just before the rename
        try:
            os.replace(temporary, path)
        except OSError as e:
            raise _naming(e, path) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError, AttributeError):  # the rename itself, on disk
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _naming(error: OSError, path) -> OSError:
    """The same kind of ``OSError``, naming ``path`` instead of the temporary file."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, path)
