"""The ``mixtures`` command line: ``demo``, ``fit``, ``predict`` and ``info``.

Every command validates its input before anything is compiled and reports a
problem as one line on standard error, ``mixtures: error: ...``, naming the
file and, for data, the line (CSV) or index (NumPy) and column; ``--debug``
shows the traceback instead. Exit status: 0 on success, 2 for invalid input
(options, data, model files), 1 when a file cannot be read or written.
``docs/cli.md`` describes every command with examples.

The library is imported inside the commands, so ``mixtures --help`` is fast
and a missing optional extra (matplotlib, tqdm) only matters to the command
that uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import struct
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

__all__ = ["CommandError", "Data", "ProgressReporter", "family_label", "main", "read_data"]

FAMILY_NAMES = ("gaussian", "poisson", "bernoulli", "categorical", "exponential", "gamma")
COVARIANCES = ("full", "diag", "spherical", "tied")
PLOT_HINT = "install matplotlib for figures: pip install 'mixtures[plot]'"


class CommandError(Exception):
    """A problem with the command's input, reported as one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, reporting usage errors as one ``CommandError`` line instead of usage text."""

    def error(self, message):
        raise CommandError(message)


# -- data files ---------------------------------------------------------------


class Data(NamedTuple):
    """A data matrix read from a file, with what is needed to point at its cells.

    Attributes:
      x: (N, D) float64 values of the chosen columns.
      columns: the D column names (the header's, else "x1", "x2", ...).
      path: the file, as given.
      lines: (N,) line of the file each row came from (CSV), or None (arrays).
      positions: the D columns' 1-based positions in the file.
    """

    x: np.ndarray
    columns: tuple
    path: str
    lines: np.ndarray | None
    positions: tuple

    def where(self, row: int, column: int) -> str:
        """'file, line L, column C (name)' for CSV, 'file, x[i, j] (name)' for arrays."""
        name = self.columns[column]
        if self.lines is not None:
            return f"{self.path!r}, line {self.lines[row]}, column {self.positions[column]} ({name})"
        return f"{self.path!r}, x[{row}, {self.positions[column] - 1}] ({name})"


def read_data(path: str, *, columns: str | None = None, key: str | None = None, delimiter: str | None = None) -> Data:
    """Reads a data matrix from CSV, ``.npy`` or ``.npz``; every value must be a finite number.

    A CSV file's first row is a header when any of its cells is not a
    number; its names can then be used by ``columns``. Blank lines and lines
    starting with ``#`` are skipped. NumPy files are recognised by their
    content, whatever the extension; a 1-D array is one column.

    Args:
      path: the file.
      columns: optional comma-separated column names or 1-based positions.
      key: the array's name in an ``.npz`` holding several.
      delimiter: the CSV delimiter (default "," or, for ``.tsv``, a tab).

    Returns:
      A :class:`Data`.

    Raises:
      CommandError: naming the file, and the line or index and column of a
        bad value.

    Example:
      >>> import os, tempfile
      >>> from mixtures.cli import read_data
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = os.path.join(tmp, "d.csv")
      ...     with open(path, "w") as f:
      ...         _ = f.write("id,height,weight\\na,1.5,60\\nb,1.8,80\\n")
      ...     data = read_data(path, columns="weight,2")
      >>> data.x.tolist(), data.columns
      ([[60.0, 1.5], [80.0, 1.8]], ('weight', 'height'))
    """
    with open(path, "rb") as f:
        start = f.read(6)
    if start.startswith(b"\x93NUMPY") or start.startswith(b"PK\x03\x04"):
        return _read_array(path, start.startswith(b"PK"), columns, key)
    if key is not None:
        raise CommandError(f"--key applies to .npz archives; {path!r} is a text file.")
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
    return _read_csv(path, delimiter, columns)


def _read_csv(path: str, delimiter: str, columns: str | None) -> Data:
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for cells in reader:
                if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                    continue
                rows.append(cells)
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise CommandError(f"{path!r} is not UTF-8 text (byte {e.start}); give a CSV, .npy or .npz file.") from None
    except csv.Error as e:
        raise CommandError(f"{path!r} is not valid CSV: {e}.") from None
    if not rows:
        raise CommandError(f"{path!r} holds no data rows.")
    width = len(rows[0])
    header = not all(_is_number(c) for c in rows[0])
    names = tuple(c.strip() for c in rows[0]) if header else tuple(f"x{j + 1}" for j in range(width))
    first_line = lines[0]
    if header:
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise CommandError(f"{path!r} has a header line but no data rows.")
    for cells, line in zip(rows, lines):
        if len(cells) != width:
            raise CommandError(
                f"{path!r}, line {line}: {len(cells)} fields; expected {width}, as on line {first_line}."
            )
    chosen = _choose_columns(columns, names, path)
    values = np.empty((len(rows), len(chosen)))
    for j, c in enumerate(chosen):
        for i, cells in enumerate(rows):
            text = cells[c].strip()
            try:
                values[i, j] = float(text)
            except ValueError:
                what = "is empty" if not text else f"holds {text!r:.40}, not a number"
                raise CommandError(f"{path!r}, line {lines[i]}, column {c + 1} ({names[c]}) {what}.") from None
    data = Data(values, tuple(names[c] for c in chosen), path, np.asarray(lines), tuple(c + 1 for c in chosen))
    _check_finite(data)
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _choose_columns(spec: str | None, names: tuple, path: str) -> list[int]:
    """0-based indices of the columns ``spec`` names (names or 1-based positions); all by default."""
    if spec is None:
        return list(range(len(names)))
    chosen = []
    for token in (t.strip() for t in spec.split(",")):
        if token in names:
            chosen.append(names.index(token))
        elif re.fullmatch(r"[0-9]+", token) and 1 <= int(token) <= len(names):
            chosen.append(int(token) - 1)
        else:
            raise CommandError(
                f"--columns: {path!r} has no column {token!r}; its columns are "
                f"{', '.join(names)} (or their positions 1..{len(names)})."
            )
    if len(set(chosen)) != len(chosen):
        raise CommandError(f"--columns names a column twice: {spec!r}.")
    return chosen


def _read_array(path: str, archive: bool, columns: str | None, key: str | None) -> Data:
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise CommandError(f"{path!r} cannot be read as a NumPy file without unpickling: {e}.") from None
    except (OSError, EOFError) as e:
        raise CommandError(f"{path!r} is not a readable NumPy file: {e}.") from None
    if archive:
        with loaded:
            names = list(loaded.files)
            if key is None and len(names) != 1:
                raise CommandError(
                    f"{path!r} holds {len(names)} arrays ({', '.join(names) or 'none'}); choose one with --key."
                )
            name = names[0] if key is None else key
            if name not in names:
                raise CommandError(f"--key: {path!r} has no array {name!r}; it holds {', '.join(names)}.")
            try:
                array = loaded[name]
            except ValueError as e:
                raise CommandError(f"{path!r}: the array {name!r} cannot be read without unpickling: {e}.") from None
    else:
        if key is not None:
            raise CommandError(f"--key applies to .npz archives; {path!r} is a .npy file.")
        array = loaded
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise CommandError(f"{path!r} holds an array of dtype {array.dtype}; the data must be real numbers.")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise CommandError(
            f"{path!r} holds an array of shape {array.shape}; the data must have shape (N, D), N, D ≥ 1."
        )
    names = tuple(f"x{j + 1}" for j in range(array.shape[1]))
    chosen = _choose_columns(columns, names, path)
    data = Data(
        np.asarray(array[:, chosen], np.float64), tuple(names[c] for c in chosen), path, None,
        tuple(c + 1 for c in chosen),
    )
    _check_finite(data)
    return data


def _check_finite(data: Data) -> None:
    bad = ~np.isfinite(data.x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise CommandError(f"{data.where(i, j)} is {data.x[i, j]}; the data must be finite numbers.")


def _check_family_data(family, data: Data) -> None:
    """The family's domain check (``family.check_data``), its message pointing into the file."""
    try:
        family.check_data(data.x)
    except ValueError as e:
        found = re.fullmatch(r"column (\d+) of `x` must hold (.+); row (\d+) has (.+)\.", str(e))
        if found is None:
            raise CommandError(f"{data.path!r}: {e}") from None
        j, what, i, value = found.groups()
        where = data.where(int(i), int(j))
        raise CommandError(f"{where} is {value}; {family_label(family)} data must be {what}.") from None


def _as_compute_dtype(data: Data, float64: bool) -> np.ndarray:
    if float64:
        return data.x
    with np.errstate(over="ignore"):
        x = data.x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise CommandError(f"{data.where(i, j)} is {data.x[i, j]}, too large for float32; use --float64.")
    return x


# -- shared pieces --------------------------------------------------------------


@contextlib.contextmanager
def _x64(enabled: bool):
    """JAX's x64 flag set to ``enabled`` for the block, then restored."""
    import jax

    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def family_label(family) -> str:
    """A short name of a family: "Gaussian (full)", "Poisson", ...

    Example:
      >>> import mixtures as mx
      >>> from mixtures.cli import family_label
      >>> family_label(mx.Gaussian("diag")), family_label(mx.Poisson())
      ('Gaussian (diag)', 'Poisson')
    """
    name = type(family).__name__
    covariance = getattr(family, "covariance", None)
    return f"{name} ({covariance})" if isinstance(covariance, str) else name


def _parameter_rows(mixture, columns) -> list:
    """The rows of the component table: ``(label, (K,) values)``, weights first.

    Gaussian: means and standard deviations (square roots of the
    covariances' diagonals); Exponential: means 1/λ; Bernoulli: p(x = 1);
    Categorical: one row per column and category; other families: each
    parameter per column.
    """
    import mixtures as mx

    params = mixture.params
    rows = [("weight", np.asarray(mixture.weights, np.float64))]
    family = mixture.family
    if isinstance(family, mx.Gaussian):
        means = np.asarray(params.means, np.float64)
        covs = np.asarray(params.covariances, np.float64)
        var = np.diagonal(covs, axis1=1, axis2=2) if covs.ndim == 3 else covs
        sd = np.sqrt(np.broadcast_to(var[:, None] if var.ndim == 1 else var, means.shape))
        rows += [(f"mean {c}", means[:, j]) for j, c in enumerate(columns)]
        rows += [(f"sd {c}", sd[:, j]) for j, c in enumerate(columns)]
    elif isinstance(family, mx.Categorical):
        probs = np.asarray(params.probs, np.float64)
        offset = 0
        for c, n in zip(columns, family.n_categories):
            rows += [(f"p({c}={v})", probs[:, offset + v]) for v in range(n)]
            offset += n
    elif isinstance(family, mx.Exponential):
        rates = np.asarray(params.rates, np.float64)
        rows += [(f"mean {c}", 1.0 / rates[:, j]) for j, c in enumerate(columns)]
    elif isinstance(family, mx.Bernoulli):
        probs = np.asarray(params.probs, np.float64)
        rows += [(f"p({c}=1)", probs[:, j]) for j, c in enumerate(columns)]
    else:
        names = {"rates": "rate", "shapes": "shape"}
        for field, leaf in zip(type(params)._fields, params):
            leaf = np.asarray(leaf, np.float64)
            rows += [(f"{names.get(field, field)} {c}", leaf[:, j]) for j, c in enumerate(columns)]
    return rows


def _component_table(mixture, columns) -> str:
    rows = _parameter_rows(mixture, columns)
    width = max(len(label) for label, _ in rows) + 2
    k = mixture.n_components
    lines = [" " * width + "".join(f"{f'component {i}':>14}" for i in range(k))]
    for label, values in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{_number(v):>14}" for v in values))
    return "\n".join(lines)


def _number(v: float) -> str:
    return f"{v:.6g}" if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"


def _selection_table(selection, criterion: str) -> str:
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


def _bic(log_likelihood: float, n: int, n_parameters: int) -> float:
    return -2.0 * n * log_likelihood + n_parameters * math.log(n)


def _require_matplotlib(option: str):
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise CommandError(f"{option} needs matplotlib; {PLOT_HINT}.") from None


def _check_writable(path: str, option: str) -> None:
    """Fails early, before a long fit, if ``path`` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CommandError(f"{option}: {path!r} is a directory; give a file name.", status=1)
    if not os.path.isdir(directory):
        raise CommandError(f"{option}: the directory of {path!r} does not exist.", status=1)
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{option}: cannot write to the directory of {path!r} (permission denied).", status=1)


def _figure(panels: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0 * panels, 4.8), layout="constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


# -- progress -----------------------------------------------------------------


class ProgressReporter:
    """Receives ``mx.fit``'s per-iteration :class:`~mixtures.Progress` reports and shows them on stderr.

    With tqdm: a bar over EM iterations (restarts run side by side, so the
    bar follows the furthest one) showing the best current log-likelihood.
    It starts at the first report, after compilation, and appears once the
    iterations have run for ``delay`` seconds, so short fits print nothing.
    Without tqdm: a plain line every ``every`` seconds after ``delay``.

    Args:
      max_iter: the fit's ``max_iter``.
      restarts: the number of restarts.
      delay: seconds of iterating before anything is shown.
      every: seconds between plain lines (without tqdm).
      stream: where to write (default ``sys.stderr``).

    Example:
      >>> import io, mixtures as mx
      >>> from mixtures.cli import ProgressReporter
      >>> stream = io.StringIO()
      >>> reporter = ProgressReporter(100, 2, delay=0.0, stream=stream)
      >>> for i in (1, 2, 3):
      ...     reporter(mx.Progress(0, i, -5.0 + i))
      ...     reporter(mx.Progress(1, i, -4.0 + i))
      >>> reporter.close()
      >>> "3/3" in stream.getvalue(), "log-likelihood -1.000000" in stream.getvalue()
      (True, True)
    """

    def __init__(self, max_iter: int, restarts: int, *, delay: float = 1.0, every: float = 2.0, stream=None):
        self.max_iter, self.restarts, self.delay, self.every = max_iter, restarts, delay, every
        self.stream = sys.stderr if stream is None else stream
        self.latest: dict = {}
        self.iteration = 0
        self.lock = threading.Lock()
        self.bar = None
        self.started = None
        self.last_line = 0.0
        try:
            from tqdm import tqdm
        except ImportError:
            self.tqdm = None
        else:
            self.tqdm = tqdm

    def __call__(self, report) -> None:
        with self.lock:
            now = time.monotonic()
            if self.started is None:
                self.started, self.last_line = now, now + self.delay - self.every
                if self.tqdm is not None:
                    restarts = f"{self.restarts} restart{'s' * (self.restarts > 1)}"
                    self.bar = self.tqdm(
                        total=self.max_iter, desc=f"EM, {restarts}", unit="it", file=self.stream,
                        delay=self.delay, dynamic_ncols=True, leave=True,
                    )
            self.latest[report.restart] = report.log_likelihood
            best = max(self.latest.values())
            if self.bar is not None:
                self.bar.set_postfix_str(f"log-likelihood {best:.6f}", refresh=False)
            if report.iteration <= self.iteration:
                return
            self.iteration = report.iteration
            if self.bar is not None:
                self.bar.update(self.iteration - self.bar.n)
            elif now - self.last_line >= self.every:
                self.last_line = now
                print(f"EM iteration {self.iteration}/{self.max_iter}: log-likelihood {best:.6f}", file=self.stream)

    def close(self) -> None:
        """Ends the bar at the iterations run (a converged fit stops before ``max_iter``)."""
        if self.bar is not None:
            self.bar.total = self.bar.n
            self.bar.close()


# -- commands -----------------------------------------------------------------


def _format_fit(weights, means, covs, log_likelihood, n_iter, converged, columns) -> str:
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


def _sorted_by_first_mean(mixture):
    """The same mixture, components ordered by their first mean (display order)."""
    import jax

    import mixtures as mx

    order = np.argsort(np.asarray(mixture.params.means)[:, 0], kind="stable")
    params = jax.tree.map(lambda leaf: leaf[order], mixture.params)
    return mx.Mixture(mixture.weights[order], params, mixture.family)


def _demo(args) -> int:
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
    restarts = _positive(args.restarts, "--restarts")
    if args.components is not None:
        _components_in_range(args.components, n, "the Old Faithful data")
    k_max = min(_positive(args.k_max, "--k-max"), n)
    plot_path = None if args.no_plot else args.plot
    if plot_path is not None:
        _check_writable(plot_path, "--plot")
    family = mx.Gaussian(covariance=args.covariance)
    key = jax.random.key(args.seed)
    with _x64(True):  # the demo fits in float64
        if args.components is None:
            selection = mx.select(x, family, range(1, k_max + 1), key=key, n_init=restarts, tol=1e-6, max_iter=500)
            result = selection.best
        else:
            selection = None
            result = mx.fit(x, family, n_components=args.components, key=key, n_init=restarts, tol=1e-6, max_iter=500)
        m = _sorted_by_first_mean(result.mixture)
        table = _format_fit(
            np.asarray(m.weights), np.asarray(m.params.means), np.asarray(m.params.covariances),
            float(result.log_likelihood), int(result.n_iter), bool(result.converged), columns,
        )
        print(f"Old Faithful geyser: {n} eruptions, columns {', '.join(columns)} (minutes)")
        if selection is not None:
            print(f"\nK chosen by BIC among 1..{k_max} ({restarts} restarts each, covariance={args.covariance!r}):\n")
            print(_selection_table(selection, "bic"))
        print(f"\n{m.n_components}-component Gaussian mixture, covariance={args.covariance!r}\n")
        print(table)
        if plot_path is not None:
            try:
                _require_matplotlib("the figure")
            except CommandError:
                print(f"No figure: matplotlib is not installed; {PLOT_HINT}.")
                return 0
            from mixtures import plot

            fig, axes = _figure(2 if selection is not None else 1)
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


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise CommandError(f"{option} must be a positive integer; received {value}.")
    return value


def _components_in_range(k: int, n: int, source: str) -> None:
    if k < 1:
        raise CommandError(f"--components must be a positive integer or 'auto'; received {k}.")
    if k > n:
        raise CommandError(f"--components must be at most the number of rows, N = {n} in {source}; received {k}.")


def _make_family(args, data: Data):
    import mixtures as mx

    name = args.family
    if args.covariance is not None and name != "gaussian":
        raise CommandError(f"--covariance applies to --family gaussian, not {name}.")
    if args.categories is not None and name != "categorical":
        raise CommandError(f"--categories applies to --family categorical, not {name}.")
    if args.reg_covar is not None and name != "gaussian":
        raise CommandError(f"--reg-covar applies to --family gaussian, not {name}.")
    if name == "gaussian":
        reg = 1e-6 if args.reg_covar is None else args.reg_covar
        try:
            return mx.Gaussian(args.covariance or "full", reg_covar=reg)
        except ValueError as e:
            raise CommandError(f"--reg-covar: {e}") from None
    if name == "categorical":
        if args.categories is None:
            top = np.nanmax(data.x, axis=0)
            counts = tuple(max(2, int(t) + 1) if math.isfinite(t) and t >= 0 else 2 for t in top)
        else:
            try:
                counts = tuple(int(c) for c in args.categories.split(","))
            except ValueError:
                raise CommandError(
                    f"--categories must be comma-separated integers; received {args.categories!r}."
                ) from None
            if len(counts) != data.x.shape[1]:
                raise CommandError(
                    f"--categories gives {len(counts)} counts; the data has {data.x.shape[1]} columns."
                )
        try:
            return mx.Categorical(counts)
        except ValueError as e:
            raise CommandError(f"--categories: {e}") from None
    return {"poisson": mx.Poisson, "bernoulli": mx.Bernoulli, "exponential": mx.Exponential, "gamma": mx.Gamma}[name]()


def _fit(args) -> int:
    """``mixtures fit``: fits a mixture to a data file, prints a summary, saves the model and a figure.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    data = read_data(args.data, columns=args.columns, key=args.key, delimiter=args.delimiter)
    n, d = data.x.shape
    auto = args.components == "auto"
    if not auto:
        _components_in_range(args.components, n, repr(args.data))
    k_max = min(_positive(args.k_max, "--k-max"), n)
    restarts = _positive(args.restarts, "--restarts")
    _positive(args.max_iter, "--max-iter")
    if not (math.isfinite(args.tol) and args.tol >= 0):
        raise CommandError(f"--tol must be a non-negative number; received {args.tol}.")
    if args.out is not None:
        _check_writable(args.out, "--out")
    if args.plot is not None:
        _require_matplotlib("--plot")
        _check_writable(args.plot, "--plot")
        if d < 2:
            raise CommandError(f"--plot draws two columns; {args.data!r} has {d} (choose with --columns).")
    family = _make_family(args, data)
    _check_family_data(family, data)
    x = _as_compute_dtype(data, args.float64)

    import jax

    import mixtures as mx

    key = jax.random.key(args.seed)
    progress = _wants_progress(args)
    with _x64(True) if args.float64 else contextlib.nullcontext():
        selection = None
        if auto:
            if progress:
                print(f"Fitting K = 1..{k_max} in one compiled program ...", file=sys.stderr)
            selection = mx.select(
                x, family, range(1, k_max + 1), key=key, n_init=restarts, criterion=args.criterion,
                init=args.init, max_iter=args.max_iter, tol=args.tol,
            )
            result = selection.best
        else:
            delay = 0.0 if args.progress else 1.0  # --progress: from the first iteration
            reporter = ProgressReporter(args.max_iter, restarts, delay=delay) if progress else None
            try:
                result = mx.fit(
                    x, family, args.components, key=key, n_init=restarts, init=args.init,
                    max_iter=args.max_iter, tol=args.tol, callback=reporter,
                )
            finally:
                if reporter is not None:
                    reporter.close()
        mixture = result.mixture
        log_l = float(result.log_likelihood)
        dtype = np.dtype(mixture.dtype).name
        print(f"Data: {args.data}, {n} rows x {d} columns ({', '.join(data.columns)}), {dtype}")
        if selection is not None:
            print(f"\n{args.criterion.upper()} of each K ({restarts} restart{'s' * (restarts > 1)} each):\n")
            print(_selection_table(selection, args.criterion))
        how = f"chosen by {args.criterion.upper()} among 1..{k_max}" if auto else "given"
        print()
        print(f"{'family':<18}{mixture.family!r}")
        print(f"{'components':<18}{mixture.n_components} ({how})")
        print(f"{'restarts':<18}{restarts} (init {args.init}, seed {args.seed})")
        print(f"{'log-likelihood':<18}{log_l:.6f} per row (total {n * log_l:.4f})")
        print(f"{'BIC':<18}{_bic(log_l, n, mixture.n_parameters):.4f} ({mixture.n_parameters} free parameters)")
        state = "converged" if bool(result.converged) else "not converged"
        print(f"{'EM iterations':<18}{int(result.n_iter)} ({state}, tol {args.tol:g}, max {args.max_iter})")
        print()
        print(_component_table(mixture, data.columns))
        if args.out is not None:
            mx.save(args.out, mixture)
            print(f"\nModel saved to {args.out}")
        if args.plot is not None:
            from mixtures import plot

            fig, axes = _figure(2 if selection is not None else 1)
            plot.fit_summary(mixture, x, ax=axes[0])
            axes[0].set_xlabel(data.columns[0])
            axes[0].set_ylabel(data.columns[1])
            if selection is not None:
                plot.criterion(selection, ax=axes[1], criterion=args.criterion)
            fig.savefig(args.plot, dpi=90)
            print(f"Figure written to {args.plot}")
    return 0


def _wants_progress(args) -> bool:
    if args.progress is not None:
        return args.progress
    return sys.stderr.isatty()


def _load_model(path: str):
    import mixtures as mx

    try:
        return mx.load(path)
    except mx.ModelFileError as e:
        raise CommandError(f"{path!r} is not a usable model file: {e.reason}.") from None


def _predict(args) -> int:
    """``mixtures predict``: hard clusters (or, with ``--proba``, responsibilities) of a data file's rows.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    if args.out is not None:
        _check_writable(args.out, "--out")
    with _x64(True):  # the model's own dtype, float64 included
        mixture = _load_model(args.model)
        data = read_data(args.data, columns=args.columns, key=args.key, delimiter=args.delimiter)
        d = mixture.n_features
        if data.x.shape[1] != d:
            raise CommandError(
                f"{args.data!r} has {data.x.shape[1]} columns ({', '.join(data.columns)}); the model "
                f"{args.model!r} has D = {d} (choose them with --columns)."
            )
        _check_family_data(mixture.family, data)
        if args.proba:
            values = np.asarray(mixture.responsibilities(data.x), np.float64)
            header = ",".join(f"p{k}" for k in range(mixture.n_components))
            fmt = "%.17g"
        else:
            values = np.asarray(mixture.predict(data.x))[:, None]
            header, fmt = "component", "%d"
    if args.out is not None:
        np.savetxt(args.out, values, fmt=fmt, delimiter=",", header=header, comments="")
        print(f"{len(values)} rows written to {args.out}")
    else:
        np.savetxt(sys.stdout, values, fmt=fmt, delimiter=",", header=header, comments="")
    return 0


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


def _info(args) -> int:
    """``mixtures info``: what a model file holds.

    Args:
      args: the parsed options.

    Returns:
      The exit status, 0.
    """
    with _x64(True):
        mixture = _load_model(args.model)
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
        print(_component_table(mixture, columns))
    return 0


# -- the parser -----------------------------------------------------------------


def _k_or_auto(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto'; received {text!r}") from None


def _data_options(p) -> None:
    p.add_argument("--columns", help="comma-separated column names (CSV header) or 1-based positions (default: all)")
    p.add_argument("--key", help="the array's name in an .npz holding several")
    p.add_argument("--delimiter", help="CSV delimiter (default ',', or a tab for .tsv)")


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mixtures`` command (usage errors raise :class:`CommandError`)."""
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    parser = _Parser(prog="mixtures", description="Mixture models fitted by EM, on JAX.", parents=[debug])
    parser.set_defaults(debug=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,fit,predict,info}")

    p = sub.add_parser(
        "demo", parents=[debug], help="fit the built-in Old Faithful data, choosing K by BIC, and draw it",
        description="Fits Gaussian mixtures to the Old Faithful geyser data (float64), picks K by BIC, "
        "prints the BIC table and the fitted mixture and draws a figure.",
    )
    p.add_argument("--components", type=int, help="fix K instead of choosing it by BIC")
    p.add_argument("--covariance", choices=COVARIANCES, default="full", help="covariance type (default full)")
    p.add_argument("--k-max", type=int, default=6, help="largest K tried by BIC (default 6)")
    p.add_argument("--restarts", type=int, default=8, help="EM restarts per K (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--plot", default="old_faithful.png", metavar="PATH", help="figure file (default old_faithful.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    p.set_defaults(run=_demo)

    p = sub.add_parser(
        "fit", parents=[debug], help="fit a mixture to a data file (CSV, .npy, .npz)",
        description="Fits a mixture by EM to the rows of DATA and prints a summary; --out saves the model.",
    )
    p.add_argument("data", metavar="DATA", help="CSV (header optional), .npy or .npz file, one row per sample")
    p.add_argument(
        "-k", "--components", type=_k_or_auto, default="auto", metavar="K|auto",
        help="number of components, or 'auto' to choose it by --criterion among 1..--k-max (default auto)",
    )
    p.add_argument("--family", choices=FAMILY_NAMES, default="gaussian", help="component family (default gaussian)")
    p.add_argument("--covariance", choices=COVARIANCES, help="Gaussian covariance type (default full)")
    p.add_argument("--reg-covar", type=float, help="added to Gaussian covariance diagonals (default 1e-6)")
    p.add_argument("--categories", help="categorical: categories per column, e.g. 3,2 (default: largest code + 1)")
    p.add_argument("--restarts", type=int, default=4, help="EM restarts, the best kept (default 4)")
    p.add_argument("--init", choices=("kmeans++", "kmeans", "random", "random_from_data"), default="kmeans++",
                   help="initialisation (default kmeans++)")
    p.add_argument("--max-iter", type=int, default=100, help="maximum EM iterations (default 100)")
    p.add_argument(
        "--tol", type=float, default=1e-3, help="convergence threshold on the mean log-likelihood (default 1e-3)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed: the fit uses jax.random.key(SEED) (default 0)")
    p.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    p.add_argument("--k-max", type=int, default=10, help="largest K tried by --components auto (default 10)")
    p.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic", help="criterion of auto (default bic)")
    _data_options(p)
    p.add_argument("-o", "--out", metavar="MODEL", help="save the fitted model here (e.g. model.mixture)")
    p.add_argument("--plot", metavar="PNG", help="draw the first two columns, clusters and components here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(run=_fit)

    p = sub.add_parser(
        "predict", parents=[debug], help="cluster the rows of a data file with a saved model",
        description="Prints the hard cluster of every row of DATA (or, with --proba, its responsibilities) as CSV.",
    )
    p.add_argument("model", metavar="MODEL", help="a model file written by mixtures fit --out or mx.save")
    p.add_argument("data", metavar="DATA", help="CSV, .npy or .npz file with the model's D columns")
    p.add_argument("--proba", action="store_true", help="print p(component k | row) for every k instead")
    _data_options(p)
    p.add_argument("-o", "--out", metavar="CSV", help="write here instead of standard output")
    p.set_defaults(run=_predict)

    p = sub.add_parser("info", parents=[debug], help="describe a saved model file")
    p.add_argument("model", metavar="MODEL", help="a model file written by mixtures fit --out or mx.save")
    p.set_defaults(run=_info)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mixtures`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 2 for invalid input, 1 when a file
      cannot be read or written; errors are one line on standard error.

    Example:
      >>> from mixtures.cli import main
      >>> main(["demo", "--components", "0"])  # the error goes to standard error
      2
    """
    from mixtures import disable_xla_cpu_fusion

    disable_xla_cpu_fusion(strict=False)  # the measured faster setting; in-process callers keep theirs
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = _build_parser().parse_args(argv)
        return args.run(args)
    except Exception as e:
        if debug:
            raise
        status, message = _describe(e)
        print(f"mixtures: error: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print("mixtures: interrupted", file=sys.stderr)
        return 130


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


if __name__ == "__main__":
    sys.exit(main())
