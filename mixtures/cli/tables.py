"""What the commands print: family labels, the component table, the table of each K, the demo's fit."""

from __future__ import annotations

import numpy as np

__all__ = ["component_table", "family_label", "format_fit", "selection_table"]


def family_label(family) -> str:
    """A short name of a family, as the family gives it (:meth:`~mixtures.Family.label`): "Gaussian (full)", "Poisson", ...

    Example:
      >>> import mixtures as mx
      >>> from mixtures.cli import family_label
      >>> family_label(mx.Gaussian("diag")), family_label(mx.Poisson())
      ('Gaussian (diag)', 'Poisson')
    """
    return family.label()


def component_table(mixture, columns) -> str:
    """The components side by side: the weights, then the rows of the family's :meth:`~mixtures.Family.parameter_table`."""
    rows = [("weight", np.asarray(mixture.weights, np.float64))]
    rows += mixture.family.parameter_table(mixture.params, list(columns))
    width = max(len(label) for label, _ in rows) + 2
    k = mixture.n_components
    lines = [" " * width + "".join(f"{f'component {i}':>14}" for i in range(k))]
    for label, values in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{_number(v):>14}" for v in values))
    return "\n".join(lines)


def _number(v: float) -> str:
    return f"{v:.6g}" if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"


def selection_table(selection, criterion: str) -> str:
    lines = [
        f"{'K':>4}  {'log-likelihood':>15}  {'parameters':>10}  {criterion.upper():>12}  {'iterations':>10}  converged"
    ]
    for row in selection.table:
        chosen = "   <- chosen" if row["n_components"] == selection.n_components else ""
        lines.append(
            f"{row['n_components']:>4}  {row['log_likelihood']:>15.6f}  {row['n_parameters']:>10}  "
            f"{row[criterion]:>12.3f}  {row['n_iter']:>10}  {'yes' if row['converged'] else 'no':>9}{chosen}"
        )
    return "\n".join(lines)


def format_fit(weights, means, covs, log_likelihood, n_iter, converged, columns) -> str:
    """The demo's table of a Gaussian mixture: weight, mean and covariance matrix of each component."""
    width = 2 + max(10, *(len(c) + 4 for c in columns))
    lines = []
    for k in range(len(weights)):
        lines.append(f"Component {k + 1}   weight {weights[k]:.4f}")
        lines.append("  " + " " * width + "".join(f"{c:>{width}}" for c in columns))
        lines.append("  " + f"{'mean':<{width}}" + "".join(f"{v:>{width}.4f}" for v in means[k]))
        cov = covs[k] if covs.ndim == 3 else (np.diag(covs[k]) if covs.ndim == 2 else np.eye(len(columns)) * covs[k])
        for name, row in zip(columns, cov):
            label = f"cov {name}"
            lines.append("  " + f"{label:<{width}}" + "".join(f"{v:>{width}.4f}" for v in row))
        lines.append("")
    lines.append(f"Mean log-likelihood per sample: {log_likelihood:.6f}")
    lines.append(f"EM iterations: {n_iter} ({'converged' if converged else 'not converged'})")
    return "\n".join(lines)
