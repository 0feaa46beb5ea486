"""The ``mixtures`` command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _format_fit(weights, means, covs, log_likelihood, n_iter, converged, columns) -> str:
    """A readable table of a fitted Gaussian mixture, components in order of their first mean."""
    import numpy as np

    width = 2 + max(10, *(len(c) + 4 for c in columns))
    lines = []
    for number, k in enumerate(np.argsort(means[:, 0]), start=1):
        lines.append(f"Component {number}   weight {weights[k]:.4f}")
        lines.append("  " + " " * width + "".join(f"{c:>{width}}" for c in columns))
        lines.append("  " + f"{'mean':<{width}}" + "".join(f"{v:>{width}.4f}" for v in means[k]))
        cov = covs[k]
        if cov.ndim == 0:
            cov = np.eye(len(columns)) * cov
        elif cov.ndim == 1:
            cov = np.diag(cov)
        for name, row in zip(columns, cov):
            label = f"cov {name}"
            lines.append("  " + f"{label:<{width}}" + "".join(f"{v:>{width}.4f}" for v in row))
        lines.append("")
    lines.append(f"Mean log-likelihood per sample: {log_likelihood:.6f}")
    lines.append(f"EM iterations: {n_iter} ({'converged' if converged else 'not converged'})")
    return "\n".join(lines)


def demo(args) -> int:
    """``mixtures demo``: fits a Gaussian mixture to Old Faithful and prints it as a table.

    Args:
      args: the parsed options (``components``, ``covariance``, ``seed``).

    Returns:
      The exit status, 0.
    """
    import jax
    import numpy as np

    import mixtures as mx

    x = mx.datasets.load_old_faithful()
    family = mx.Gaussian(covariance=args.covariance)
    x64 = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)  # the demo fits in float64; the setting is restored below
    try:
        result = mx.fit(x, family, n_components=args.components, key=jax.random.key(args.seed), tol=1e-6)
        m = result.mixture
        table = _format_fit(
            np.asarray(m.weights), np.asarray(m.params.means), np.asarray(m.params.covariances),
            float(result.log_likelihood), int(result.n_iter), bool(result.converged),
            mx.datasets.OLD_FAITHFUL_COLUMNS,
        )
    finally:
        jax.config.update("jax_enable_x64", x64)
    print(
        f"Old Faithful geyser: {x.shape[0]} eruptions, columns "
        f"{', '.join(mx.datasets.OLD_FAITHFUL_COLUMNS)} (minutes)"
    )
    print(f"{args.components}-component Gaussian mixture, covariance={args.covariance!r}\n")
    print(table)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``mixtures`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 2 for invalid input (reported in one
      line on standard error).

    Example:
      >>> from mixtures.cli import main
      >>> main(["demo", "--components", "0"])  # the error goes to standard error
      2
    """
    parser = argparse.ArgumentParser(prog="mixtures", description="Mixture models fitted by EM, on JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="fit the built-in Old Faithful data and print the fitted mixture")
    p.add_argument("--components", type=int, default=2, help="number of components (default 2)")
    p.add_argument(
        "--covariance", choices=("full", "diag", "spherical", "tied"), default="full",
        help="covariance type (default full)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the initialisation (default 0)")
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError) as err:
        print(f"mixtures: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
