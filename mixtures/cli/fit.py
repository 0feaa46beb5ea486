"""``mixtures fit``: a mixture fitted to a data file, summarised, saved and drawn."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings

import numpy as np

from mixtures._src.core import checks
from mixtures._src.core.checks import MAX_ITER
from mixtures._src.engine.options import DEFAULT_TOL
from mixtures._src.fitting.segments import SEGMENT
from mixtures.cli.common import (
    bic, bounded, check_plot_format, check_writable, components_in_range, figure, positive, require_matplotlib,
    wants_progress, write_output, x64,
)
from mixtures.cli.data import add_data_options, as_compute_dtype, check_family_data, filled, read_data
from mixtures.cli.errors import CommandError
from mixtures.cli.families import add_family_options, make_family, make_model_families
from mixtures.cli.progress import ProgressReporter
from mixtures.cli.tables import component_table, family_label, selection_table

__all__ = ["add_parser", "run"]


def run(args) -> int:
    """``mixtures fit``: fits a mixture to a data file, prints a summary, saves the model and a figure.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    data = read_data(args.data, columns=args.columns, key=args.key, delimiter=args.delimiter, missing=args.missing)
    n, d = data.x.shape
    missing = "marginalize" if args.missing else None
    # Rows with nothing observed are left out of the fit (mx.fit warns); N counts the others.
    n_used = int(np.count_nonzero(~np.all(np.isnan(data.x), axis=1)))
    auto = args.components == "auto"
    if not auto:
        components_in_range(args.components, n, repr(args.data))
    k_max = min(positive(args.k_max, "--k-max"), n)
    # "hc" is deterministic: its restarts would all be alike.
    restarts = positive(args.restarts, "--restarts") if args.restarts is not None else 1 if args.init == "hc" else 4
    positive(args.max_iter, "--max-iter")
    bounded(args.max_iter, "--max-iter", 1, MAX_ITER, "the fit counts iterations in int32")
    bounded(args.seed, "--seed", 0, 2**63 - 1, "the key jax.random.key(SEED) takes a 64-bit seed")
    if not (math.isfinite(args.tol) and args.tol >= 0):
        raise CommandError(f"--tol must be a non-negative number; received {args.tol}.")
    if args.checkpoint_every is not None:
        positive(args.checkpoint_every, "--checkpoint-every")
        if args.checkpoint is None:
            raise CommandError("--checkpoint-every needs --checkpoint FILE.")
    if args.checkpoint is not None:
        if auto:
            raise CommandError("--checkpoint needs a given number of components (-k K); -k auto is not resumable.")
        if args.models is not None:
            raise CommandError("--checkpoint fits one model; --models fits several and is not resumable.")
        check_writable(args.checkpoint, "--checkpoint", inputs=(args.data,))
    if args.out is not None:
        check_writable(args.out, "--out", inputs=(args.data,) + ((args.checkpoint,) if args.checkpoint else ()))
    if args.plot is not None:
        require_matplotlib("--plot")
        check_writable(args.plot, "--plot", inputs=(args.data, args.out, args.checkpoint))
        plot_format = check_plot_format(args.plot, "--plot")
    grid = args.models is not None
    families = make_model_families(args, data) if grid else [make_family(args, data)]
    family = families[0]
    for f in families:
        if args.missing and not f.handles_missing:
            raise CommandError(f"--missing: {family_label(f)} components cannot take rows with missing entries.")
    check_family_data(family, filled(data) if args.missing else data)
    x = as_compute_dtype(data, args.float64)
    k_largest = k_max if auto else args.components
    try:
        checks.restarts_fit_in_memory(
            restarts * (k_max if auto else 1), n_components=k_largest, n_features=d,
            history=min(args.max_iter, SEGMENT),
            chunk_size=256, n_rows=n, itemsize=x.dtype.itemsize, name="--restarts",
        )
    except ValueError as e:
        raise CommandError(str(e)) from None

    import jax

    import mixtures as mx

    key = jax.random.key(args.seed)
    progress = wants_progress(args)
    with x64(True) if args.float64 else contextlib.nullcontext(), warnings.catch_warnings():
        # The rows with nothing observed are counted in the summary below, not in a Python warning.
        warnings.filterwarnings("ignore", message=r".*with no observed entry", category=UserWarning)
        selection = None
        if auto or grid:
            ks = range(1, k_max + 1) if auto else [args.components]
            if progress:
                what = f"K = 1..{k_max}" if auto else f"K = {args.components}"
                each = f"{len(families)} models, one compiled program each" if grid else "one compiled program"
                print(f"Fitting {what} for {each} ...", file=sys.stderr)
            selection = mx.select(
                x, families, ks, key=key, n_init=restarts, criterion=args.criterion,
                init=args.init, max_iter=args.max_iter, tol=args.tol, missing=missing,
            )
            result = selection.best
        else:
            delay = 0.0 if args.progress else 1.0  # --progress: from the first iteration
            reporter = ProgressReporter(args.max_iter, restarts, delay=delay) if progress else None
            if args.checkpoint is not None and os.path.exists(args.checkpoint):
                print(f"Resuming from the checkpoint {args.checkpoint} ...", file=sys.stderr)
            finished = False
            try:
                result = mx.fit(
                    x, family, args.components, key=key, n_init=restarts, init=args.init,
                    max_iter=args.max_iter, tol=args.tol, callback=reporter, checkpoint=args.checkpoint,
                    checkpoint_every=args.checkpoint_every, missing=missing,
                )
                finished = True
            finally:
                if reporter is not None:
                    reporter.close(finished)
        mixture = result.mixture
        log_l = float(result.log_likelihood)
        dtype = np.dtype(mixture.dtype).name
        print(f"Data: {args.data}, {n} rows x {d} columns ({', '.join(data.columns)}), {dtype}")
        if args.missing:
            holes = int(np.count_nonzero(np.isnan(data.x)))
            empty = n - n_used
            print(f"Missing entries: {holes} of {n * d} ({100 * holes / (n * d):.1f}%); {empty} "
                  f"row{'s' * (empty != 1)} with nothing observed left out")
        restarts_each = f"{restarts} restart{'s' * (restarts > 1)} each"
        if grid:
            print(f"\n{len(families)} covariance models × K ({restarts_each}):\n")
            print(selection.grid(args.criterion))
        elif selection is not None:
            print(f"\n{args.criterion.upper()} of each K ({restarts_each}):\n")
            print(selection_table(selection, args.criterion))
        how = f"chosen by {args.criterion.upper()} among 1..{k_max}" if auto else "given"
        print()
        print(f"{'family':<18}{mixture.family!r}")
        if grid:
            print(f"{'model':<18}{mixture.family.covariance} (chosen by {args.criterion.upper()} among "
                  f"{len(families)} model{'s' * (len(families) > 1)})")
        print(f"{'components':<18}{mixture.n_components} ({how})")
        print(f"{'restarts':<18}{restarts} (init {args.init}, seed {args.seed})")
        print(f"{'log-likelihood':<18}{log_l:.6f} per row (total {n_used * log_l:.4f})")
        print(f"{'BIC':<18}{bic(log_l, n_used, mixture.n_parameters):.4f} ({mixture.n_parameters} free parameters)")
        state = "converged" if bool(result.converged) else "not converged"
        print(f"{'EM iterations':<18}{int(result.n_iter)} ({state}, tol {args.tol:g}, max {args.max_iter})")
        print()
        print(component_table(mixture, data.columns))
        if args.out is not None:
            mx.save(args.out, mixture)
            print(f"\nModel saved to {args.out}")
        if args.plot is not None:
            from mixtures import plot

            fig, axes = figure(2 if selection is not None else 1)
            # With missing entries the figure shows the fully observed rows.
            plot.fit_summary(mixture, x[~np.isnan(x).any(axis=1)] if args.missing else x, ax=axes[0])
            if d == 1:  # a histogram, with the responsibilities beneath it holding the x axis
                fig.axes[-1].set_xlabel(data.columns[0])
            else:
                axes[0].set_xlabel(data.columns[0])
                axes[0].set_ylabel(data.columns[1])
            if selection is not None:
                plot.criterion(selection, ax=axes[1], criterion=args.criterion)
            write_output(args.plot, "--plot", lambda f: fig.savefig(f, format=plot_format, dpi=90))
            print(f"Figure written to {args.plot}")
    return 0


def _k_or_auto(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto'; received {text!r}") from None


def add_parser(sub, parents) -> None:
    """Adds ``fit`` to the subcommands ``sub``, with an option for every configurable family field."""
    p = sub.add_parser(
        "fit", parents=parents, help="fit a mixture to a data file (CSV, .npy, .npz)",
        description="Fits a mixture by EM to the rows of DATA and prints a summary; --out saves the model.",
    )
    p.add_argument("data", metavar="DATA", help="CSV (header optional), .npy or .npz file, one row per sample")
    p.add_argument(
        "-k", "--components", type=_k_or_auto, default="auto", metavar="K|auto",
        help="number of components, or 'auto' to choose it by --criterion among 1..--k-max (default auto)",
    )
    p.add_argument(
        "--restarts", type=int, default=None, help="EM restarts, the best kept (default 4; 1 with --init hc)"
    )
    p.add_argument(
        "--init", choices=("kmeans++", "kmeans", "random", "random_from_data", "hc"), default="kmeans++",
        help="initialisation (default kmeans++); hc: mclust's hierarchical start (Gaussian families, deterministic)",
    )
    p.add_argument("--max-iter", type=int, default=100, help="maximum EM iterations (default 100)")
    p.add_argument(
        "--missing", action="store_true",
        help="read empty cells (and NA, NaN) as missing entries: EM uses each row's observed entries",
    )
    p.add_argument(
        "--tol", type=float, default=DEFAULT_TOL,
        help=f"convergence threshold on the mean log-likelihood (default {DEFAULT_TOL:g})"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed: the fit uses jax.random.key(SEED) (default 0)")
    p.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    p.add_argument("--k-max", type=int, default=10, help="largest K tried by --components auto (default 10)")
    p.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic",
                   help="criterion of auto and --models (default bic)")
    p.add_argument(
        "--models", metavar="M1,M2,...|all",
        help="Gaussian covariance models to compare (e.g. VVV,EEE or full,tied; 'all': every one), each over "
        "the K of -k (auto: 1..--k-max); prints the criterion of each model and K, keeps the best",
    )
    add_data_options(p)
    p.add_argument("-o", "--out", metavar="MODEL", help="save the fitted model here (e.g. model.mixture)")
    p.add_argument(
        "--plot", metavar="PNG",
        help="draw the first two columns, clusters and components here (one column: a histogram and the density)",
    )
    p.add_argument(
        "--checkpoint", metavar="FILE",
        help="with a given K: save the fit's state here every --checkpoint-every iterations; the same command "
        "run again resumes from it (Ctrl-C, a killed process) and ends as an uninterrupted run would",
    )
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="iterations between checkpoints (default: one every 30 seconds)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    add_family_options(p)
    p.set_defaults(run=run)
