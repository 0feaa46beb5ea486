"""``mixtures demo``: the Old Faithful data, K chosen by BIC, the fitted Gaussian mixture printed and drawn."""

from __future__ import annotations

import numpy as np

from mixtures.cli.common import (
    PLOT_HINT, check_writable, components_in_range, figure, positive, require_matplotlib, x64,
)
from mixtures.cli.errors import CommandError
from mixtures.cli.tables import format_fit, selection_table

__all__ = ["add_parser", "run"]

# scikit-learn's four names, then mclust's models (mx.Gaussian.MODELS, named here so that
# building the parser does not import JAX).
COVARIANCES = ("full", "diag", "spherical", "tied") + (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"
)


def _sorted_by_first_mean(mixture):
    """The same mixture, components ordered by their first mean (display order)."""
    import jax

    import mixtures as mx

    order = np.argsort(np.asarray(mixture.params.means)[:, 0], kind="stable")
    params = jax.tree.map(lambda leaf: leaf[order], mixture.params)
    return mx.Mixture(mixture.weights[order], params, mixture.family)


def run(args) -> int:
    """``mixtures demo``: Old Faithful, K chosen by BIC, the fitted mixture printed and drawn.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    import jax

    import mixtures as mx

    x = mx.datasets.load_old_faithful()
    columns = mx.datasets.OLD_FAITHFUL_COLUMNS
    n = x.shape[0]
    restarts = positive(args.restarts, "--restarts")
    if args.components is not None:
        components_in_range(args.components, n, "the Old Faithful data")
    k_max = min(positive(args.k_max, "--k-max"), n)
    plot_path = None if args.no_plot else args.plot
    if plot_path is not None:
        check_writable(plot_path, "--plot")
    family = mx.Gaussian(covariance=args.covariance)
    key = jax.random.key(args.seed)
    with x64(True):  # the demo fits in float64
        if args.components is None:
            selection = mx.select(x, family, range(1, k_max + 1), key=key, n_init=restarts, tol=1e-6, max_iter=500)
            result = selection.best
        else:
            selection = None
            result = mx.fit(x, family, n_components=args.components, key=key, n_init=restarts, tol=1e-6, max_iter=500)
        m = _sorted_by_first_mean(result.mixture)
        table = format_fit(
            np.asarray(m.weights), np.asarray(m.params.means), np.asarray(m.params.covariances),
            float(result.log_likelihood), int(result.n_iter), bool(result.converged), columns,
        )
        print(f"Old Faithful geyser: {n} eruptions, columns {', '.join(columns)} (minutes)")
        if selection is not None:
            print(f"\nK chosen by BIC among 1..{k_max} ({restarts} restarts each, covariance={args.covariance!r}):\n")
            print(selection_table(selection, "bic"))
        print(f"\n{m.n_components}-component Gaussian mixture, covariance={args.covariance!r}\n")
        print(table)
        if plot_path is not None:
            try:
                require_matplotlib("the figure")
            except CommandError:
                print(f"No figure: matplotlib is not installed; {PLOT_HINT}.")
                return 0
            from mixtures import plot

            fig, axes = figure(2 if selection is not None else 1)
            plot.fit_summary(m, x, ax=axes[0])
            axes[0].set_xlabel(f"{columns[0]} (minutes)")
            axes[0].set_ylabel(f"{columns[1]} (minutes)")
            axes[0].set_title(f"Old Faithful: {m.n_components}-component Gaussian mixture ({args.covariance})")
            if selection is not None:
                plot.criterion(selection, ax=axes[1], criterion="bic")
                axes[1].set_title("BIC of each K (circled: chosen)")
            fig.savefig(plot_path, dpi=90)
            print(f"\nFigure written to {plot_path}")
    return 0


def add_parser(sub, parents) -> None:
    """Adds ``demo`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "demo", parents=parents, help="fit the built-in Old Faithful data, choosing K by BIC, and draw it",
        description="Fits Gaussian mixtures to the Old Faithful geyser data (float64), picks K by BIC, "
        "prints the BIC table and the fitted mixture and draws a figure.",
    )
    p.add_argument("--components", type=int, help="fix K instead of choosing it by BIC")
    p.add_argument(
        "--covariance", choices=COVARIANCES, default="full", metavar="COVARIANCE",
        help="covariance model: full, diag, spherical, tied or one of mclust's EII ... VVV (default full)",
    )
    p.add_argument("--k-max", type=int, default=6, help="largest K tried by BIC (default 6)")
    p.add_argument("--restarts", type=int, default=8, help="EM restarts per K (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--plot", default="old_faithful.png", metavar="PATH", help="figure file (default old_faithful.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    p.set_defaults(run=run)
