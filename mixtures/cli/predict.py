"""``mixtures predict``: the hard clusters (or responsibilities) of a data file's rows under a saved model."""

from __future__ import annotations

import sys

import numpy as np

from mixtures.cli.common import check_writable, load_model, write_output, x64
from mixtures.cli.data import add_data_options, check_family_data, filled, read_data
from mixtures.cli.errors import CommandError

__all__ = ["add_parser", "run"]


def run(args) -> int:
    """``mixtures predict``: hard clusters (or, with ``--proba``, responsibilities) of a data file's rows.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    if args.out is not None:
        check_writable(args.out, "--out", inputs=(args.model, args.data))
    with x64(True):  # the model's own dtype, float64 included
        mixture = load_model(args.model)
        data = read_data(args.data, columns=args.columns, key=args.key, delimiter=args.delimiter, missing=args.missing)
        d = mixture.n_features
        if data.x.shape[1] != d:
            raise CommandError(
                f"{args.data!r} has {data.x.shape[1]} columns ({', '.join(data.columns)}); the model "
                f"{args.model!r} has D = {d} (choose them with --columns)."
            )
        missing = "marginalize" if args.missing else None
        if args.missing and not mixture.family.handles_missing:
            raise CommandError("--missing: the model's components cannot take rows with missing entries.")
        if not args.missing:
            check_family_data(mixture.family, data)
        elif not np.all(np.isnan(data.x), axis=0).any():  # each column's domain, on its observed entries
            check_family_data(mixture.family, filled(data))
        if args.proba:
            values = np.asarray(mixture.responsibilities(data.x, missing=missing), np.float64)
            header = ",".join(f"p{k}" for k in range(mixture.n_components))
            fmt = "%.17g"
        else:
            values = np.asarray(mixture.predict(data.x, missing=missing))[:, None]
            header, fmt = "component", "%d"
    if args.out is not None:
        write_output(
            args.out, "--out", lambda f: np.savetxt(f, values, fmt=fmt, delimiter=",", header=header, comments="")
        )
        print(f"{len(values)} rows written to {args.out}")
    else:
        np.savetxt(sys.stdout, values, fmt=fmt, delimiter=",", header=header, comments="")
    return 0


def add_parser(sub, parents) -> None:
    """Adds ``predict`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "predict", parents=parents, help="cluster the rows of a data file with a saved model",
        description="Prints the hard cluster of every row of DATA (or, with --proba, its responsibilities) as CSV.",
    )
    p.add_argument("model", metavar="MODEL", help="a model file written by mixtures fit --out or mx.save")
    p.add_argument("data", metavar="DATA", help="CSV, .npy or .npz file with the model's D columns")
    p.add_argument("--proba", action="store_true", help="print p(component k | row) for every k instead")
    p.add_argument(
        "--missing", action="store_true",
        help="read empty cells (and NA, NaN) as missing entries: each row is taken by its observed entries",
    )
    add_data_options(p)
    p.add_argument("-o", "--out", metavar="CSV", help="write here instead of standard output")
    p.set_defaults(run=run)
