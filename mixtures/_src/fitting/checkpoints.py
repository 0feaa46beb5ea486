"""Checkpoints of long fits: the loop's state saved every few iterations, atomically, and resumed from.

A checkpoint file is a NumPy ``.npz`` archive (read without pickle) holding
the state of every restart, the history so far, the iteration reached and a
fingerprint of everything the fit's result depends on: the data, the row
weights and labels, the family, K, the keys or warm start, the options, the
tolerance, the prior. A fit given ``checkpoint=path`` resumes from the file
when the fingerprint matches and refuses it, naming the reason, when it does
not; it never replaces a file that is not a checkpoint of the same fit. A
finished fit's checkpoint holds its final state, so the same call returns at
once.
"""

from __future__ import annotations

import errno
import hashlib
import io
import numbers
import os
import time
import zipfile
from typing import Callable

import jax
import numpy as np

from mixtures._src.core import checks, files

__all__ = ["Checkpoint", "add_array", "check_checkpoint", "fingerprint"]

FORMAT = 1
_MARK = "mixtures_checkpoint"

SECONDS = 30.0
"""Without ``checkpoint_every``, a checkpoint is written when this much time has passed since the last."""


def fingerprint(*parts) -> str:
    """A SHA-256 digest of strings, numbers, None and arrays (and pytrees of them), in order.

    Arrays contribute their dtype, shape and bytes, so the same values in
    another dtype or shape give another digest.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.fitting.checkpoints import fingerprint
      >>> fingerprint("a", np.zeros(2)) == fingerprint("a", np.zeros(2, np.float32))
      False
    """
    digest = hashlib.sha256()
    for part in parts:
        leaves, treedef = jax.tree.flatten(part)
        digest.update(str(treedef).encode())
        for leaf in leaves:
            if isinstance(leaf, (str, numbers.Number)) or leaf is None:
                digest.update(f"{type(leaf).__name__}:{leaf!r};".encode())
                continue
            if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            add_array(digest, np.asarray(leaf))
    return digest.hexdigest()


def add_array(digest, a: np.ndarray) -> None:
    """Adds an array's dtype, shape and bytes to a ``hashlib`` digest (without copying a contiguous array)."""
    a = np.ascontiguousarray(a)
    digest.update(f"{a.dtype.str}{a.shape};".encode())
    digest.update(memoryview(a).cast("B"))


def check_checkpoint(path, every) -> tuple:
    """Validates ``checkpoint`` and ``checkpoint_every`` before anything is compiled; returns them cleaned.

    ``path`` None means no checkpoint. It must be absent or a regular file
    (see :mod:`mixtures._src.core.files`) in an existing directory; several
    processes cannot share one. ``every`` None means every :data:`SECONDS`.
    """
    if every is not None:
        every = checks.positive_int(every, "checkpoint_every")
    if path is None:
        return None, every
    path = files.as_path(path, "checkpoint")
    files.check_output_path(path, "checkpoint")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "`checkpoint`: its directory does not exist", directory)
    if jax.process_count() > 1:
        raise ValueError(
            "`checkpoint` is for fits in one process; this one spans "
            f"{jax.process_count()} processes (jax.distributed)."
        )
    return path, every


class Checkpoint:
    """The checkpoint file of one fit.

    Args:
      path: the file (validated by :func:`check_checkpoint`).
      every: save every this many iterations (and when the fit ends); None:
        when :data:`SECONDS` have passed since the last save (or the start).
      identity: the :func:`fingerprint` of the fit's inputs.
      like: returns the shapes and dtypes of the loop's states (a pytree of
        ``jax.ShapeDtypeStruct``), called only when a file is read.
    """

    def __init__(self, path, every: int | None, identity: str, like: Callable[[], object]):
        self.path, self.every, self.identity, self._like = path, every, identity, like
        self.saved_at: int | None = None
        self._last = time.monotonic()

    @property
    def name(self) -> str:
        return repr(os.fsdecode(self.path))

    def holds(self, unit: str) -> str:
        """A sentence for an interruption's note: which ``unit`` (iteration, update) the file holds.

        Example:
          >>> from mixtures._src.fitting.checkpoints import Checkpoint
          >>> c = Checkpoint("fit.ckpt", 10, "", lambda: None)
          >>> c.holds("iteration")
          "The checkpoint 'fit.ckpt' holds no iteration yet (one is saved every 10)."
          >>> c.saved_at = 20
          >>> c.holds("iteration")
          "The checkpoint 'fit.ckpt' holds iteration 20."
        """
        if self.saved_at is None:
            every = f"every {self.every}" if self.every else f"every {SECONDS:g} s"
            return f"The checkpoint {self.name} holds no {unit} yet (one is saved {every})."
        return f"The checkpoint {self.name} holds {unit} {self.saved_at}."

    def next_after(self, first: int) -> int:
        """The next iteration at which a checkpoint is due (none when they are timed)."""
        if self.every is None:
            return np.iinfo(np.int64).max
        return (first // self.every + 1) * self.every

    def due(self, first: int) -> bool:
        """Whether to save now, at ``first`` iterations (or updates)."""
        if self.every is None:
            return time.monotonic() - self._last >= SECONDS
        return first % self.every == 0

    def load(self):
        """``(states, history, first, going)`` from the file, or None when there is no file yet.

        Raises:
          ValueError: the file is not a checkpoint, is damaged, or belongs
            to another fit.
        """
        try:
            files.check_input_file(self.path, "checkpoint")
        except FileNotFoundError:
            return None
        refuse = f"`checkpoint`: {self.name}"
        not_ours = f"{refuse} is not a checkpoint written by mixtures; it is left as it is: give another path or remove it."
        if not zipfile.is_zipfile(self.path):  # an .npz archive is a zip file; anything else is not ours
            raise ValueError(not_ours)
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                stored = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            raise ValueError(not_ours) from None
        mark = stored.get(_MARK)
        if mark is None or mark.shape != () or not np.issubdtype(mark.dtype, np.integer):
            raise ValueError(not_ours)
        if int(mark) != FORMAT:
            raise ValueError(
                f"{refuse} is a checkpoint of format {int(mark)}, and this version of mixtures reads format "
                f"{FORMAT}; it is left as it is: give another path or remove it."
            )
        if str(stored.get("fingerprint", "")) != self.identity:
            raise ValueError(
                f"{refuse} is the checkpoint of another fit (other data, family, K, keys or options); it is "
                "left as it is: give another path, or remove it to start this fit afresh."
            )
        like = self._like()
        leaves, treedef = jax.tree.flatten(like)
        arrays = [stored.get(f"leaf{i}") for i in range(len(leaves))]
        first = int(stored["first"])
        history = stored["history"]
        fits = all(
            a is not None and a.shape == tuple(s.shape) and a.dtype == s.dtype for a, s in zip(arrays, leaves)
        ) and history.shape[-1] == first
        if not fits:
            raise ValueError(f"{refuse} is damaged: its arrays do not have the shapes of this fit's state.")
        self.saved_at = first
        states = jax.tree.unflatten(treedef, [checks.to_device(a) for a in arrays])  # on the device once, here
        return states, history, first, bool(stored["going"])

    def save(self, states, history, first: int, going: bool) -> None:
        """Writes the file atomically (the previous checkpoint stays whole until the new one replaces it)."""
        leaves = jax.device_get(jax.tree.leaves(states))
        contents = {f"leaf{i}": np.asarray(a) for i, a in enumerate(leaves)}
        contents.update(
            {
                _MARK: np.asarray(FORMAT),
                "fingerprint": np.asarray(self.identity),
                "first": np.asarray(first),
                "going": np.asarray(going),
                "history": np.asarray(history),
            }
        )
        buffer = io.BytesIO()
        np.savez(buffer, **contents)
        files.write_atomically(self.path, lambda f: f.write(buffer.getvalue()), "checkpoint")
        self.saved_at = first
        self._last = time.monotonic()
