"""``mixtures info``: what a model file holds."""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from mixtures.cli.common import load_model, x64
from mixtures.cli.tables import component_table

__all__ = ["add_parser", "run"]


def _read_header(path: str) -> dict:
    """The JSON header of a model file (call after ``mx.load`` has validated the file).

    Args:
      path: a file written by ``mx.save``.

    Returns:
      The header as a dict (format, format_version, library_version, family, ...).
    """
    from mixtures.io import MAGIC

    with open(path, "rb") as f:
        f.seek(len(MAGIC))
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length).decode("utf-8"))


def run(args) -> int:
    """``mixtures info``: what a model file holds.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    with x64(True):
        mixture = load_model(args.model)
        header = _read_header(args.model)
        version = ".".join(str(v) for v in header["format_version"])
        columns = [f"x{j + 1}" for j in range(mixture.n_features)]
        print(f"{'file':<18}{args.model} ({os.path.getsize(args.model)} bytes)")
        print(f"{'format':<18}{header['format']} {version} (written by mixtures {header['library_version']})")
        print(f"{'family':<18}{mixture.family!r}")
        print(f"{'components K':<18}{mixture.n_components}")
        print(f"{'features D':<18}{mixture.n_features}")
        print(f"{'dtype':<18}{np.dtype(mixture.dtype).name}")
        print(f"{'free parameters':<18}{mixture.n_parameters}")
        print()
        print(component_table(mixture, columns))
    return 0


def add_parser(sub, parents) -> None:
    """Adds ``info`` to the subcommands ``sub``."""
    p = sub.add_parser("info", parents=parents, help="describe a saved model file")
    p.add_argument("model", metavar="MODEL", help="a model file written by mixtures fit --out or mx.save")
    p.set_defaults(run=run)
