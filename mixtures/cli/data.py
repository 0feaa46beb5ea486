"""Data files for the command line: CSV, ``.npy`` and ``.npz``, every bad value named by file, line and column."""

from __future__ import annotations

import csv
import math
import os
import re
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from mixtures._src.core.incomplete import median_filled
from mixtures.cli.errors import CommandError
from mixtures.cli.tables import family_label

__all__ = ["Data", "add_data_options", "as_compute_dtype", "check_family_data", "filled", "read_data"]


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


MISSING_CELLS = ("", "na", "nan", "n/a", "?")
"""CSV cells read as a missing entry with ``--missing`` (case-insensitive, after stripping spaces)."""


def read_data(
    path: str, *, columns: str | None = None, key: str | None = None, delimiter: str | None = None,
    missing: bool = False,
) -> Data:
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
      missing: an empty cell (or NA, NaN, N/A, ?) of a CSV file, and NaN in
        a NumPy file, is a missing entry (NaN in the result) rather than an
        error; infinite values are still refused.

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
    from mixtures._src.core import files

    try:
        files.check_input_file(path, "DATA")  # a FIFO or /dev/zero would block or fill memory
    except ValueError as e:
        raise CommandError(str(e).replace("`DATA`: ", "")) from None
    with open(path, "rb") as f:
        start = f.read(6)
    if start.startswith(b"\x93NUMPY") or start.startswith(b"PK"):
        return _read_array(path, start.startswith(b"PK"), columns, key, missing)
    if key is not None:
        raise CommandError(f"--key applies to .npz archives; {path!r} is a text file.")
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
    return _read_csv(path, delimiter, columns, missing)


def _read_csv(path: str, delimiter: str, columns: str | None, missing: bool = False) -> Data:
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for cells in reader:
                blank = all(not c.strip() for c in cells)
                # With missing entries a line of delimiters alone is a row with nothing observed (kept, so
                # that predictions line up with the file's rows); a line with no delimiter is blank.
                if not cells or (blank and not (missing and len(cells) > 1)) or cells[0].lstrip().startswith("#"):
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
            if missing and text.lower() in MISSING_CELLS:
                values[i, j] = np.nan
                continue
            try:
                values[i, j] = float(text)
            except ValueError:
                if not text:
                    what = "is empty (--missing reads empty cells as missing entries)"
                elif text.lower() in MISSING_CELLS:
                    what = f"holds {text!r}, not a number (--missing reads it as a missing entry)"
                else:
                    what = f"holds {text!r:.40}, not a number"
                raise CommandError(f"{path!r}, line {lines[i]}, column {c + 1} ({names[c]}) {what}.") from None
    data = Data(values, tuple(names[c] for c in chosen), path, np.asarray(lines), tuple(c + 1 for c in chosen))
    _check_finite(data, missing)
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


def _npy_problem(f, size: int) -> str | None:
    """What is wrong with the .npy stream ``f`` of ``size`` bytes (header and data), or None if nothing."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=10_000)
    except ValueError as e:
        if "EOF" in str(e) or "truncated" in str(e).lower():
            return f"it is truncated: its {size} bytes end inside the .npy header"
        return f"its .npy header is malformed ({e})"
    if dtype.hasobject:
        return f"it holds Python objects (dtype {dtype}), which would need unpickling; it is never unpickled"
    expected = f.tell() + math.prod(shape) * dtype.itemsize
    if size < expected:
        return (
            f"it is truncated: its header declares a {dtype} array of shape {shape} ({expected} bytes with the "
            f"header), but it has {size} bytes"
        )
    return None


def _read_array(path: str, archive: bool, columns: str | None, key: str | None, missing: bool = False) -> Data:
    if archive:
        array = _read_npz_member(path, key)
    else:
        if key is not None:
            raise CommandError(f"--key applies to .npz archives; {path!r} is a .npy file.")
        with open(path, "rb") as f:
            problem = _npy_problem(f, os.fstat(f.fileno()).st_size)
        if problem is not None:
            raise CommandError(f"{path!r} is not a readable NumPy .npy file: {problem}.")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CommandError(f"{path!r} is not a readable NumPy .npy file: {e}.") from None
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
    _check_finite(data, missing)
    return data


def _read_npz_member(path: str, key: str | None) -> np.ndarray:
    """The array ``key`` (or the only one) of the .npz archive ``path``, every failure named."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CommandError(
            f"{path!r} is not a readable .npz archive: the zip file is truncated or damaged ({e})."
        ) from None
    with archive:
        members = {name[:-4] if name.endswith(".npy") else name: name for name in archive.namelist()}
        names = list(members)
        if not names:
            raise CommandError(f"{path!r} is an .npz archive that holds no arrays.")
        if key is None and len(names) != 1:
            raise CommandError(f"{path!r} holds {len(names)} arrays ({', '.join(names)}); choose one with --key.")
        name = names[0] if key is None else key
        if name not in members:
            raise CommandError(f"--key: {path!r} has no array {name!r}; it holds {', '.join(names)}.")
        where = f"{path!r}: the array {name!r}"
        try:
            info = archive.getinfo(members[name])
            with archive.open(info) as member:
                problem = _npy_problem(member, info.file_size)
            if problem is not None:
                raise CommandError(f"{where} is not a readable .npy member: {problem}.")
            with archive.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except CommandError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
            raise CommandError(f"{where} cannot be read: the archive is truncated or damaged ({e}).") from None


def _check_finite(data: Data, missing: bool = False) -> None:
    bad = ~np.isfinite(data.x)
    if missing:
        bad &= ~np.isnan(data.x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        hint = " (or, with --missing, NaN for a missing entry)" if np.isnan(data.x[i, j]) else ""
        raise CommandError(f"{data.where(i, j)} is {data.x[i, j]}; the data must be finite numbers{hint}.")


def filled(data: Data) -> Data:
    """The data with each missing entry (NaN) set to its column's median observed value, for domain checks."""
    never = np.flatnonzero(np.all(np.isnan(data.x), axis=0))
    if never.size:
        j = int(never[0])
        raise CommandError(f"{data.path!r}: column {data.positions[j]} ({data.columns[j]}) has no observed entry.")
    return data._replace(x=median_filled(data.x))


def check_family_data(family, data: Data) -> None:
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


def as_compute_dtype(data: Data, float64: bool) -> np.ndarray:
    if float64:
        return data.x
    with np.errstate(over="ignore"):
        x = data.x.astype(np.float32)
    bad = ~np.isfinite(x) & ~np.isnan(data.x)  # NaN: a missing entry (read only with --missing)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise CommandError(f"{data.where(i, j)} is {data.x[i, j]}, too large for float32; use --float64.")
    return x


def add_data_options(p) -> None:
    p.add_argument("--columns", help="comma-separated column names (CSV header) or 1-based positions (default: all)")
    p.add_argument("--key", help="the array's name in an .npz holding several")
    p.add_argument("--delimiter", help="CSV delimiter (default ',', or a tab for .tsv)")
