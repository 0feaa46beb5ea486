"""Saving and loading mixtures: one self-checking file of raw arrays and a JSON header, no pickle.

A model file (format 1.x, described in ``docs/save-load.md``) is

====================  =======================================================
bytes                 content
====================  =======================================================
13                    the signature ``b"\\x89MIXTURES\\r\\n\\x1a\\n"``
8                     H, the header's length, unsigned little-endian
H                     the header, UTF-8 JSON (below)
Σ nbytes              every array's bytes, little-endian, C order, in the
                      header's order (weights, then the parameter leaves)
32                    SHA-256 of all the bytes before it
====================  =======================================================

The header holds the format name and version, the library version, the
family (class name and its dataclass fields as JSON, nested families for
:class:`~mixtures.independent.Independent`), and for the weights and every
parameter leaf its dtype (``"<f4"`` or ``"<f8"``), shape and offset.

:func:`load` trusts nothing in the file. It opens only a regular file (a
FIFO or a device such as ``/dev/zero`` is refused without reading). It first
compares the checksum with the bytes (read 1 MiB at a time), so a truncated
or damaged file is reported as such. It then checks the header, whose sizes
must add up to the file's real size before any array is allocated, and whose
decoding is linear in its length and bounded by it (integers of at most 19
digits; every family constructor checks its fields in linear time); builds
the family only from the registry :data:`FAMILIES` (the built-in classes and
those registered with :func:`mixtures.register_family`), through their
constructors (which validate their fields) and from JSON values only; checks
every array's shape against the layout the family gives
(:meth:`~mixtures.Family.params_layout`) and its values: finite, weights
non-negative and summing to 1, parameters inside the family's parameter space
(:meth:`~mixtures.Family.check_params`). Nothing is ever unpickled or
imported. :func:`save` refuses what :func:`load` would refuse, and writes
through :mod:`mixtures._src.core.files`: atomically, and only over a regular
file.

A :class:`~mixtures.VariationalMixture` is saved in the same container with
the header's ``format`` :data:`VARIATIONAL_FORMAT_NAME` (which readers of
plain mixtures refuse by name), ``n_features`` (D), and ``weights`` and
``components`` described as ``params`` is (a DirichletPrior or StickBreaking;
a GaussianPrior, a ConjugatePrior or a tuple of them), arrays in that order.
:func:`load` rebuilds those classes only from a fixed list, checks the shapes
against the family's posterior on D columns (after bounding the family's
parameter count by the file's size), the values (finite, positive counts and
scales, enough degrees of freedom) and the posterior mean's parameters
(:meth:`~mixtures.Family.check_params`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import numbers
import stat
import struct
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixtures._src.core import checks, files, registry
from mixtures._src.core.family import Family
from mixtures._src.core.mixture import Mixture
from mixtures._src.core.priors import ConjugatePrior, DirichletPrior
from mixtures._src.core.variational import StickBreaking, VariationalMixture
from mixtures._src.families.expfam import ExponentialFamily, newton_natural_from_mean
from mixtures._src.families.gaussian.family import Gaussian
from mixtures._src.families.gaussian.prior import GaussianPrior
from mixtures._src.families.gaussian.variational import SHARED as _SHARED_MODELS
from mixtures._src.families.independent import Independent

__all__ = [
    "FAMILIES", "FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "VARIATIONAL_FORMAT_NAME", "load", "save",
]

MAGIC = b"\x89MIXTURES\r\n\x1a\n"
FORMAT_NAME = "mixtures.Mixture"
VARIATIONAL_FORMAT_NAME = "mixtures.VariationalMixture"
"""The header's ``format`` of a file holding a :class:`~mixtures.VariationalMixture` (same container, version 1.x)."""
FORMAT_VERSION = (1, 0)
_LENGTH = struct.Struct("<Q")
_DIGEST_BYTES = hashlib.sha256().digest_size
_MAX_HEADER_BYTES = 16 * 2**20
_MAX_DEPTH = 32
_MAX_NDIM = 8
_MAX_INTEGER_DIGITS = 19  # any header integer fits in 64 bits
_MAX_REASON = 1000  # characters of a ModelFileError's reason
_DTYPES = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8")}
# The only classes a variational posterior's weights and components are rebuilt from, by class name.
_WEIGHT_POSTERIORS = {"DirichletPrior": DirichletPrior, "StickBreaking": StickBreaking}
# A posterior's mean parameters may hold at most this many numbers per stored number (plus _PARAMS_ALLOWANCE)
# before anything of the family's beyond params_layout runs: a header cannot make load allocate much more
# than the file's size.
_PARAMS_PER_NUMBER = 16
_PARAMS_ALLOWANCE = 2**20

FAMILIES = registry.registered_families()
"""The only classes :func:`load` constructs a family from, by class name (a read-only view of the registry).

Every built-in family is registered; :func:`mixtures.register_family` adds one of your own.
"""


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read as a mixture: what is wrong, and which file.

    Attributes:
      path: the file's path.
      reason: what is wrong with it.

    Example:
      >>> import os, tempfile
      >>> from mixtures.io import ModelFileError, load
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = os.path.join(tmp, "empty")
      ...     open(path, "wb").close()
      ...     try:
      ...         load(path)
      ...     except ModelFileError as e:
      ...         print(e.reason)
      the file is truncated: it has 0 bytes, fewer than the 13-byte signature
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot load a mixture from {path!r}: {reason}")
        self.path = path
        self.reason = reason


class _Invalid(Exception):
    """Internal: a content problem, reported by :func:`load` as a ``ModelFileError``."""


class _Array(NamedTuple):
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int


class _Node(NamedTuple):
    """A parameter tree's description: kind "tuple" with items, or a NamedTuple class name with fields."""

    kind: str
    items: tuple = ()
    fields: tuple = ()  # ((name, shape), ...)


# -- saving -------------------------------------------------------------------


def save(path, mixture: Mixture | VariationalMixture) -> None:
    """Writes a mixture, or a variational posterior over one, to one file, atomically; read it back with :func:`load`.

    The file is written next to ``path`` under a temporary name, flushed to
    disk (``fsync``) and then renamed over ``path`` (``os.replace``), so an
    existing file is replaced whole or not at all: a failed save leaves it
    intact. Only a regular file is ever replaced: a directory, a symbolic
    link (never followed), a FIFO, a socket or a device node at ``path`` is
    refused. Errors name ``path``, never the temporary file. Arrays are
    stored bit for bit (float32 or float64, as in the mixture). Saving the
    same mixture twice gives identical bytes.

    A :class:`~mixtures.VariationalMixture` (the ``posterior`` of
    :func:`mixtures.fit_variational`) is saved whole: its weights' posterior
    (a :class:`~mixtures.priors.DirichletPrior` or stick-breaking
    :class:`~mixtures._src.core.variational.StickBreaking`), its components'
    posterior (:class:`~mixtures.priors.GaussianPrior`,
    :class:`~mixtures.priors.ConjugatePrior`, or a tuple of them for
    ``Independent``) and its family, in the same container with the header's
    ``format`` :data:`VARIATIONAL_FORMAT_NAME`; :func:`load` gives it back
    as a VariationalMixture.

    Args:
      path: a file path (str, bytes or ``os.PathLike``): absent or a regular file.
      mixture: a concrete (not traced) :class:`~mixtures.Mixture` of a
        registered family (:data:`FAMILIES`: the built-in ones and those
        registered with :func:`mixtures.register_family`, nested ones for
        ``Independent``) whose dataclass fields are numbers, strings,
        booleans, None, families or tuples of them, with parameters that are
        NamedTuples (or tuples of them) of float32/float64 arrays laid out as
        the family's :meth:`~mixtures.Family.params_layout` says,
        weights finite, non-negative and summing to 1 (within 1e-5) and
        finite parameters: the mixtures :func:`load` accepts. Or a concrete
        :class:`~mixtures.VariationalMixture` of a family with a conjugate
        posterior (Gaussian, an exponential family, ``Independent`` of
        them) whose arrays are float32/float64, finite, laid out as the
        family's posterior is, with positive concentrations, shrinkages and
        pseudo-counts, degrees of freedom above D − 1 (``"full"`` and
        ``"tied"`` Gaussians) or 0, positive (definite) scales, and a
        posterior mean (``.mixture``) inside the family's parameter space.

    Raises:
      TypeError: if ``path`` is not a path, ``mixture`` is not a Mixture or
        a VariationalMixture, holds traced or non-floating arrays, or has a
        family that is not registered (register a family of your own with
        ``mx.register_family``).
      ValueError: if the weights or parameters are malformed, non-finite or
        outside the family's parameter space (its ``check_params``), a
        posterior is malformed or outside its domain, or ``path`` is a
        symbolic link, FIFO, socket or device node.
      IsADirectoryError: if ``path`` is a directory.
      OSError: if the file cannot be written (``path`` is then unchanged).

    Example:
      >>> import os, tempfile, numpy as np, mixtures as mx
      >>> from mixtures.io import load, save
      >>> g = mx.Gaussian("diag")
      >>> m = mx.Mixture(np.array([0.25, 0.75]), g.make_params(np.zeros((2, 3)), np.ones((2, 3))), g)
      >>> post = mx.VariationalMixture(  # what mx.fit_variational(...).posterior holds
      ...     mx.DirichletPrior(np.array([3.0, 1.0])),
      ...     mx.ConjugatePrior(np.array([3.0, 1.0]), np.array([[2.0], [9.0]])), mx.Poisson())
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save(os.path.join(tmp, "model.mixture"), m)
      ...     back = load(os.path.join(tmp, "model.mixture"))
      ...     save(os.path.join(tmp, "posterior.mixture"), post)
      ...     post_back = load(os.path.join(tmp, "posterior.mixture"))
      >>> back.family == m.family, np.array_equal(back.weights, m.weights)
      (True, True)
      >>> type(post_back).__name__, post_back.components.mean.tolist(), post_back.mixture.weights.tolist()
      ('VariationalMixture', [[2.0], [9.0]], [0.75, 0.25])
    """
    path = files.as_path(path, "path")
    variational = isinstance(mixture, VariationalMixture)
    if not (variational or isinstance(mixture, Mixture)):
        raise TypeError(
            "`mixture` must be a mixtures.Mixture or a mixtures.VariationalMixture; "
            f"received {type(mixture).__name__}."
        )
    files.check_output_path(path, "path")  # before any work; again just before the rename
    from mixtures import __version__  # here, not at the top: mixtures/__init__.py imports this module

    family = _encode_family(mixture.family, "family", 0)
    if variational:
        header, blobs = _encode_variational(mixture, family, __version__)
    else:
        header, blobs = _encode_mixture(mixture, family, __version__)
    text = json.dumps(header, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
    chunks = [MAGIC, _LENGTH.pack(len(text)), text] + [array.tobytes(order="C") for _, array in blobs]
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    chunks.append(digest.digest())

    def write(f):
        for chunk in chunks:
            _write_all(f.fileno(), chunk)

    files.write_atomically(path, write, "path")


def _encode_mixture(mixture: Mixture, family: dict, version: str) -> tuple[dict, list]:
    """The header and the (name, array) list of a checked :class:`~mixtures.Mixture`."""
    blobs = []
    weights = _host_array(mixture.weights, "weights")
    params_node, params_spec = _encode_params(mixture.params, "params", blobs)
    try:
        _check_family_encoding(mixture.family, family)
        if weights.ndim != 1 or weights.shape[0] < 1:
            raise _Invalid(f"`weights` must have shape (K,) with K ≥ 1; received shape {weights.shape}")
        layout = _check_layout(mixture.family, weights.shape[0], params_node, "params")
        if jax.tree.structure(mixture.params) != jax.tree.structure(layout):
            raise _Invalid(
                f"`params` must have the structure {jax.tree.structure(layout)} that {mixture.family!r} gives; "
                f"it has {jax.tree.structure(mixture.params)}"
            )
        _check_values(weights, blobs)
        _check_domain(mixture.family, jax.tree.unflatten(jax.tree.structure(layout), [a for _, a in blobs]))
    except _Invalid as e:
        raise ValueError(f"`mixture`: {e}.") from None
    blobs.insert(0, ("weights", weights))
    specs = _offsets(blobs)
    header = {
        "format": FORMAT_NAME,
        "format_version": list(FORMAT_VERSION),
        "library_version": version,
        "family": family,
        "weights": specs["weights"],
        "params": _fill_specs(params_spec, specs),
    }
    return header, blobs


def _encode_variational(posterior: VariationalMixture, family: dict, version: str) -> tuple[dict, list]:
    """The header and the (name, array) list of a checked :class:`~mixtures.VariationalMixture`."""
    blobs = []
    weights_node, weights_spec = _encode_params(posterior.weights, "weights", blobs)
    n_weights = len(blobs)
    components_node, components_spec = _encode_params(posterior.components, "components", blobs)
    try:
        _check_family_encoding(posterior.family, family)
        d = _posterior_features(posterior.family, components_node)
        weights_layout, components_layout = _check_posterior_layout(
            posterior.family, weights_node, components_node, d
        )
        for name, part, layout in (
            ("weights", posterior.weights, weights_layout),
            ("components", posterior.components, components_layout),
        ):
            if jax.tree.structure(part) != jax.tree.structure(layout):
                raise _Invalid(
                    f"`{name}` must have the structure {jax.tree.structure(layout)} that {posterior.family!r} "
                    f"gives; it has {jax.tree.structure(part)}"
                )
        _check_posterior_values(posterior.family, components_layout, blobs[:n_weights], blobs[n_weights:])
        weights = jax.tree.unflatten(jax.tree.structure(weights_layout), [a for _, a in blobs[:n_weights]])
        components = jax.tree.unflatten(jax.tree.structure(components_layout), [a for _, a in blobs[n_weights:]])
        _check_posterior_mean(_as_posterior(weights, components, posterior.family), d)
    except _Invalid as e:
        raise ValueError(f"`mixture`: {e}.") from None
    specs = _offsets(blobs)
    header = {
        "format": VARIATIONAL_FORMAT_NAME,
        "format_version": list(FORMAT_VERSION),
        "library_version": version,
        "family": family,
        "n_features": d,
        "weights": _fill_specs(weights_spec, specs),
        "components": _fill_specs(components_spec, specs),
    }
    return header, blobs


def _check_family_encoding(family: Family, encoded: dict) -> None:
    if _decode_family(encoded, "family", 0) != family:
        raise _Invalid(f"the family {family!r} does not survive its JSON encoding {encoded}")


def _offsets(blobs: list) -> dict:
    """Each array's header entry (dtype, shape, offset), by name; the arrays follow one another in order."""
    offset = 0
    specs = {}
    for where, array in blobs:
        specs[where] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += array.nbytes
    return specs


def _host_array(leaf, where: str) -> np.ndarray:
    if checks.is_traced(leaf):
        raise TypeError(f"`mixture.{where}` is traced (inside jit or vmap); save needs a concrete mixture.")
    array = np.asarray(leaf)
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        raise TypeError(f"`mixture.{where}` must hold float32 or float64 numbers; received dtype {array.dtype}.")
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<"))


def _encode_family(family, where: str, depth: int) -> dict:
    cls = type(family)
    if not isinstance(family, Family) or FAMILIES.get(cls.__name__) is not cls:
        raise TypeError(
            f"`mixture.{where}` is {cls.__module__}.{cls.__qualname__}; only the built-in families and those "
            f"registered with mx.register_family can be saved (registered: {', '.join(FAMILIES)}). For a family "
            f"of your own, call mx.register_family({cls.__name__}) (or decorate the class with "
            "@mx.register_family) before mx.save and before mx.load."
        )
    fields = {
        f.name: _encode_value(getattr(family, f.name), f"{where}.{f.name}", depth + 1)
        for f in dataclasses.fields(family)
        if f.init
    }
    return {"class": cls.__name__, "fields": fields}


def _encode_value(value, where: str, depth: int):
    if depth > _MAX_DEPTH:
        raise ValueError(f"`mixture.{where}` nests families deeper than {_MAX_DEPTH} levels.")
    if isinstance(value, Family):
        return _encode_family(value, where, depth)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_encode_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise TypeError(f"`mixture.{where}` holds {value!r}, which has no JSON form.")


def _encode_params(params, where: str, blobs: list):
    """(description, header spec with array names as placeholders) of ``params``; appends its arrays."""
    cls = type(params)
    if cls is tuple:
        encoded = [_encode_params(p, f"{where}[{i}]", blobs) for i, p in enumerate(params)]
        node = _Node("tuple", items=tuple(n for n, _ in encoded))
        return node, {"class": "tuple", "items": [spec for _, spec in encoded]}
    if not (isinstance(params, tuple) and isinstance(getattr(cls, "_fields", None), tuple)):
        return _Node(f"{cls.__module__}.{cls.__qualname__}"), {}
    fields, specs = [], []
    for name, leaf in zip(cls._fields, params):
        array = _host_array(leaf, f"{where}.{name}")
        blobs.append((f"{where}.{name}", array))
        fields.append((name, array.shape))
        specs.append({"name": name, "array": f"{where}.{name}"})
    return _Node(cls.__name__, fields=tuple(fields)), {"class": cls.__name__, "fields": specs}


def _fill_specs(spec: dict, specs: dict) -> dict:
    if spec.get("class") == "tuple":
        return {"class": "tuple", "items": [_fill_specs(s, specs) for s in spec["items"]]}
    return {"class": spec["class"], "fields": [{"name": f["name"], **specs[f["array"]]} for f in spec["fields"]]}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- loading ------------------------------------------------------------------


def load(path) -> Mixture | VariationalMixture:
    """Reads a mixture (or a variational posterior) written by :func:`save`, validating every byte of the file.

    Arrays come back as JAX arrays with the stored bits. float64 needs
    ``jax_enable_x64``; without it float64 arrays become float32, JAX's rule
    for every array it is given.

    Args:
      path: a file path (str or ``os.PathLike``).

    Returns:
      What was saved: the :class:`~mixtures.Mixture`, or for a file whose
      header's format is :data:`VARIATIONAL_FORMAT_NAME` the
      :class:`~mixtures.VariationalMixture` (the same weight-posterior type,
      DirichletPrior or StickBreaking; ``.mixture`` gives its posterior-mean
      Mixture), its family equal to the saved one.

    Raises:
      ModelFileError: (a ``ValueError``) naming the file and what is wrong,
        if it is not a regular file (a FIFO, a device such as ``/dev/zero``,
        a directory), not a mixtures model file (an ``.npz``, a pickle), is
        truncated, corrupted or has trailing bytes, has a malformed header
        (integers longer than 19 digits included),
        a newer major format version, a family not in :data:`FAMILIES`,
        arrays whose dtypes, shapes or sizes disagree with the header or the
        family, weights that are non-finite, negative or not summing to 1
        within 1e-5, or parameters that are non-finite or outside the
        family's parameter space (its :meth:`~mixtures.Family.check_params`:
        a rate ≤ 0, a probability outside (0, 1), probabilities not summing
        to 1, a precision factor with a diagonal entry ≤ 0, a direction not
        of unit norm, a negative concentration); for a variational
        posterior, arrays not laid out as the family's posterior on the
        header's ``n_features`` columns, non-finite values, concentrations,
        beta parameters, shrinkages or pseudo-counts ≤ 0, degrees of freedom
        ≤ D − 1 (a ``"full"`` or ``"tied"`` Gaussian) or ≤ 0, a scale that
        is not positive (definite, symmetric), or a posterior mean
        (``.mixture``) outside the family's parameter space.
      OSError: if the file cannot be opened or read (``FileNotFoundError``,
        ``IsADirectoryError``, ``PermissionError``).

    Example:
      >>> import os, tempfile, numpy as np, mixtures as mx
      >>> from mixtures.io import load, save
      >>> p = mx.Poisson()
      >>> m = mx.Mixture(np.array([0.5, 0.5]), p.make_params(np.array([[1.0], [10.0]])), p)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save(os.path.join(tmp, "counts.mixture"), m)
      ...     back = load(os.path.join(tmp, "counts.mixture"))
      >>> back.family, back.params.rates.tolist()
      (Poisson(min_rate=1e-06), [[1.0], [10.0]])
    """
    path = files.as_path(path, "path")
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        try:
            if not stat.S_ISREG(info.st_mode):
                raise _Invalid(f"it is {files._kind(info.st_mode)}, not a regular file")
            return _read(f, info.st_size)
        except _Invalid as e:
            reason = str(e)
            if len(reason) > _MAX_REASON:
                reason = reason[:_MAX_REASON] + " …"
            raise ModelFileError(os.fsdecode(path), reason) from None


def _read(f, size: int) -> Mixture | VariationalMixture:
    start = f.read(len(MAGIC))
    if start != MAGIC:
        raise _Invalid(_not_a_model_file(start, size))
    fixed = len(MAGIC) + _LENGTH.size
    if size < fixed + _DIGEST_BYTES:
        raise _Invalid(f"the file is truncated: it has {size} bytes, fewer than any model's {fixed + _DIGEST_BYTES}")
    _verify_checksum(f, size)

    # The bytes are as written; what follows checks that what was written is a valid mixture.
    f.seek(len(MAGIC))
    (length,) = _LENGTH.unpack(_read_exact(f, _LENGTH.size))
    if length > _MAX_HEADER_BYTES:
        raise _Invalid(f"the header length {length} exceeds the limit of {_MAX_HEADER_BYTES} bytes")
    if fixed + length + _DIGEST_BYTES > size:
        raise _Invalid(f"the header length {length} does not fit in the file's {size} bytes")
    header = _parse_header(_read_exact(f, length))
    if _check_version(header) == VARIATIONAL_FORMAT_NAME:
        return _read_variational(f, header, size - fixed - length - _DIGEST_BYTES)
    arrays: list[_Array] = []
    weights_spec = _array_spec(_key(header, "weights", dict, "header"), "weights", arrays)
    params_node = _declared_params(_key(header, "params", dict, "header"), "params", arrays, 0)
    payload_bytes = sum(a.nbytes for a in arrays)
    if fixed + length + payload_bytes + _DIGEST_BYTES != size:
        raise _Invalid(
            f"the header declares {payload_bytes} bytes of arrays, but the file holds "
            f"{size - fixed - length - _DIGEST_BYTES}"
        )
    payload = _read_exact(f, payload_bytes)

    family = _decode_family(_key(header, "family", dict, "header"), "family", 0)
    if len(weights_spec.shape) != 1 or weights_spec.shape[0] < 1:
        raise _Invalid(f"`weights` must have shape (K,) with K ≥ 1; the header declares {list(weights_spec.shape)}")
    layout = _check_layout(family, weights_spec.shape[0], params_node, "params")
    values = [np.frombuffer(payload, a.dtype, math.prod(a.shape), a.offset).reshape(a.shape) for a in arrays]
    _check_values(values[0], list(zip(_leaf_names(params_node, "params"), values[1:])))
    treedef = jax.tree.structure(layout)
    _check_domain(family, jax.tree.unflatten(treedef, values[1:]))
    weights, *leaves = (jnp.asarray(v, checks.float_dtype_for(v.dtype)) for v in values)
    return Mixture(weights, jax.tree.unflatten(treedef, leaves), family)


def _read_variational(f, header: dict, payload_size: int) -> VariationalMixture:
    """The rest of :func:`_read` for a file whose format is :data:`VARIATIONAL_FORMAT_NAME`."""
    arrays: list[_Array] = []
    weights_node = _declared_params(_key(header, "weights", dict, "header"), "weights", arrays, 0)
    n_weights = len(arrays)
    components_node = _declared_params(_key(header, "components", dict, "header"), "components", arrays, 0)
    payload_bytes = sum(a.nbytes for a in arrays)
    if payload_bytes != payload_size:
        raise _Invalid(f"the header declares {payload_bytes} bytes of arrays, but the file holds {payload_size}")
    payload = _read_exact(f, payload_bytes)

    family = _decode_family(_key(header, "family", dict, "header"), "family", 0)
    d = _key(header, "n_features", int, "header")
    weights_layout, components_layout = _check_posterior_layout(family, weights_node, components_node, d)
    values = [np.frombuffer(payload, a.dtype, math.prod(a.shape), a.offset).reshape(a.shape) for a in arrays]
    names = _leaf_names(weights_node, "weights") + _leaf_names(components_node, "components")
    named = list(zip(names, values))
    _check_posterior_values(family, components_layout, named[:n_weights], named[n_weights:])
    weights = jax.tree.unflatten(jax.tree.structure(weights_layout), values[:n_weights])
    components = jax.tree.unflatten(jax.tree.structure(components_layout), values[n_weights:])
    posterior = _as_posterior(weights, components, family)
    _check_posterior_mean(posterior, d)
    return posterior


def _verify_checksum(f, size: int) -> None:
    """Compares the SHA-256 of the bytes before the last 32 with those 32, reading 1 MiB at a time."""
    f.seek(0)
    digest = hashlib.sha256()
    remaining = size - _DIGEST_BYTES
    while remaining:
        chunk = _read_exact(f, min(remaining, 2**20))
        digest.update(chunk)
        remaining -= len(chunk)
    if _read_exact(f, _DIGEST_BYTES) != digest.digest():
        raise _Invalid("its SHA-256 checksum does not match its contents: the file is truncated or corrupted")


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Invalid("the file became shorter while being read")
    return data


def _not_a_model_file(start: bytes, size: int) -> str:
    if MAGIC.startswith(start):
        return f"the file is truncated: it has {size} bytes, fewer than the {len(MAGIC)}-byte signature"
    if start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = "a zip archive (such as NumPy's .npz)"
    elif start.startswith(b"\x93NUMPY"):
        kind = "a NumPy .npy file"
    elif start[:1] == b"\x80":
        kind = "apparently a Python pickle"
    else:
        return f"it does not start with the mixtures model file signature {MAGIC!r}; it starts with {start!r}"
    return f"it is {kind}, not a mixtures model file; mixtures.load never opens archives or unpickles"


def _reject_constant(name):
    raise _Invalid(f"the header contains the non-standard JSON constant {name}")


def _parse_int(text: str) -> int:
    # Bounded before conversion: Python's int(str) is quadratic in the number of digits.
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        raise _Invalid(
            f"the header's JSON holds an integer of {len(text.lstrip('-'))} digits; its integers have at most "
            f"{_MAX_INTEGER_DIGITS} (they fit in 64 bits)"
        )
    return int(text)


def _unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _Invalid(f"the header repeats the key {key!r} in one object")
        obj[key] = value
    return obj


def _parse_header(text: bytes) -> dict:
    try:
        header = json.loads(
            text.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_reject_constant, parse_int=_parse_int
        )
    except UnicodeDecodeError as e:
        raise _Invalid(f"the header is not UTF-8 text ({e})") from None
    except RecursionError:
        raise _Invalid("the header nests JSON too deeply") from None
    except ValueError as e:
        raise _Invalid(f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _Invalid(f"the header must be a JSON object; it is a {type(header).__name__}")
    return header


def _key(obj: dict, key: str, kind, where: str):
    if key not in obj:
        raise _Invalid(f"{where} lacks the key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Invalid(f"{where}[{key!r}] must be a JSON {_JSON_NAMES.get(kind, kind)}; found {value!r:.200}")
    return value


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer"}


def _check_version(header: dict) -> str:
    """Checks the format name and version; returns the name (:data:`FORMAT_NAME` or :data:`VARIATIONAL_FORMAT_NAME`)."""
    name = _key(header, "format", str, "header")
    if name not in (FORMAT_NAME, VARIATIONAL_FORMAT_NAME):
        raise _Invalid(
            f"the header's format is {name!r:.200}; expected {FORMAT_NAME!r} or {VARIATIONAL_FORMAT_NAME!r}"
        )
    version = _key(header, "format_version", list, "header")
    if len(version) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in version):
        raise _Invalid(
            f"header['format_version'] must be [major, minor], two non-negative integers; found {version!r:.200}"
        )
    written_by = _key(header, "library_version", str, "header")
    from mixtures import __version__  # here, not at the top: mixtures/__init__.py imports this module

    supported = f"{FORMAT_VERSION[0]}.x"
    if version[0] != FORMAT_VERSION[0]:
        newer = "newer than" if version[0] > FORMAT_VERSION[0] else "older than"
        raise _Invalid(
            f"its format version {version[0]}.{version[1]} (written by mixtures {written_by!r:.50}) is {newer} "
            f"the version this library reads, {supported} (mixtures {__version__}); "
            + ("upgrade mixtures to load it" if version[0] > FORMAT_VERSION[0] else "it is not supported")
        )
    return name


def _array_spec(spec: dict, where: str, arrays: list) -> _Array:
    dtype_name = _key(spec, "dtype", str, where)
    if dtype_name not in _DTYPES:
        raise _Invalid(
            f"{where} has dtype {dtype_name!r:.50}; only {sorted(_DTYPES)} (little-endian float32, float64) are allowed"
        )
    shape = _key(spec, "shape", list, where)
    if len(shape) > _MAX_NDIM or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**62 for n in shape
    ):
        raise _Invalid(
            f"{where} must have a shape of at most {_MAX_NDIM} non-negative integers; found {shape!r:.200}"
        )
    offset = _key(spec, "offset", int, where)
    expected = sum(a.nbytes for a in arrays)
    if offset != expected:
        raise _Invalid(f"{where} has offset {offset}; the arrays are contiguous, so it must be {expected}")
    dtype = _DTYPES[dtype_name]
    array = _Array(dtype, tuple(shape), offset, math.prod(shape) * dtype.itemsize)
    arrays.append(array)
    return array


def _declared_params(spec: dict, where: str, arrays: list, depth: int) -> _Node:
    if depth > _MAX_DEPTH:
        raise _Invalid(f"{where} nests deeper than {_MAX_DEPTH} levels")
    kind = _key(spec, "class", str, where)
    if kind == "tuple":
        items = _key(spec, "items", list, where)
        nodes = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _Invalid(f"{where}['items'][{i}] must be a JSON object; found {item!r:.200}")
            nodes.append(_declared_params(item, f"{where}[{i}]", arrays, depth + 1))
        return _Node("tuple", items=tuple(nodes))
    fields = []
    for i, field in enumerate(_key(spec, "fields", list, where)):
        if not isinstance(field, dict):
            raise _Invalid(f"{where}['fields'][{i}] must be a JSON object; found {field!r:.200}")
        name = _key(field, "name", str, f"{where}['fields'][{i}]")
        fields.append((name, _array_spec(field, f"{where}.{name}", arrays).shape))
    return _Node(kind, fields=tuple(fields))


def _decode_family(spec, where: str, depth: int) -> Family:
    if not isinstance(spec, dict) or set(spec) != {"class", "fields"}:
        raise _Invalid(
            f"{where} must be an object with exactly the keys 'class' and 'fields'; found {spec!r:.200}"
        )
    name = _key(spec, "class", str, where)
    cls = FAMILIES.get(name)
    if cls is None:
        raise _Invalid(
            f"{where} names the unknown family class {name!r:.100}; known: {', '.join(FAMILIES)}. A family of "
            "your own loads once registered: call mx.register_family(YourClass) before mx.load"
        )
    given = _key(spec, "fields", dict, where)
    declared = {f.name for f in dataclasses.fields(cls) if f.init}
    if set(given) != declared:
        raise _Invalid(f"{where}: {name} has the fields {sorted(declared)}; the header gives {sorted(given)!r:.200}")
    kwargs = {key: _decode_value(value, f"{where}.{key}", depth + 1) for key, value in given.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ArithmeticError) as e:
        raise _Invalid(f"{where}: {name} rejects the fields in the header: {e}") from None


def _decode_value(value, where: str, depth: int):
    if depth > _MAX_DEPTH:
        raise _Invalid(f"{where} nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        return _decode_family(value, where, depth)
    if isinstance(value, list):
        return tuple(_decode_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return value


# -- shared checks --------------------------------------------------------------


class _Declared(tuple):
    """A NamedTuple as the header declares it: abstract arrays by position and by field name."""

    def __new__(cls, fields: tuple):
        declared = super().__new__(cls, (jax.ShapeDtypeStruct(shape, np.float32) for _, shape in fields))
        declared._names = {name: i for i, (name, _) in enumerate(fields)}
        return declared

    def __getattr__(self, name):
        names = self.__dict__.get("_names", {})
        if name not in names:
            raise AttributeError(name)
        return self[names[name]]


def _declared(node: _Node):
    if node.kind == "tuple":
        return tuple(_declared(item) for item in node.items)
    return _Declared(node.fields)


def _size(node: _Node) -> int:
    if node.kind == "tuple":
        return sum(_size(item) for item in node.items)
    return sum(math.prod(shape) for _, shape in node.fields)


def _check_layout(family: Family, k: int, node: _Node, where: str):
    """Checks that ``node`` describes parameters of ``k`` components of ``family``; returns the family's layout.

    The number of columns D is what ``family.n_features`` reads from the
    declared shapes; the layout is ``family.params_layout(k, D)``.
    """
    try:
        d = family.n_features(_declared(node))
    except Exception as e:  # noqa: BLE001 - any failure is a file that does not fit the family
        try:
            probe = family.params_layout(k, 2)
        except Exception:  # noqa: BLE001
            probe = None
        if probe is not None:
            _compare(probe, node, where, family, k, None)  # names the structure expected, if that differs
        raise _Invalid(
            f"{where}: {family!r} cannot read its number of columns from {_describe(node)} "
            f"({type(e).__name__}: {e})"
        ) from None
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 1 <= d <= max(1, _size(node)):
        raise _Invalid(
            f"{where}: {_describe(node)} describes D = {d!r:.50} columns for {family!r}; "
            f"expected 1 ≤ D ≤ {_size(node)}, the numbers the parameters hold"
        )
    try:
        layout = family.params_layout(k, int(d))
    except Exception as e:  # noqa: BLE001
        raise _Invalid(f"{where}: {e}") from None
    _compare(layout, node, where, family, k, int(d))
    return layout


def _compare(layout, node: _Node, where: str, family: Family, k: int, d: int | None) -> None:
    """Raises ``_Invalid`` where ``node`` differs from ``layout``; shapes are compared only when ``d`` is given."""
    if type(layout) is tuple:
        if node.kind != "tuple" or len(node.items) != len(layout):
            raise _Invalid(
                f"{where} must be a tuple of {len(layout)} entries for {family!r}; found {_describe(node)}"
            )
        for i, (part, item) in enumerate(zip(layout, node.items)):
            _compare(part, item, f"{where}[{i}]", family, k, d)
        return
    cls = type(layout)
    fields = getattr(cls, "_fields", None)
    if not isinstance(layout, tuple) or not isinstance(fields, tuple):
        raise _Invalid(
            f"{where}: {type(family).__name__}'s parameters are {cls.__name__}; only NamedTuples of arrays "
            "(and tuples of them) can be saved"
        )
    if node.kind != cls.__name__ or tuple(name for name, _ in node.fields) != fields:
        raise _Invalid(
            f"{where} must be {cls.__name__} with fields {list(fields)} for {type(family).__name__}; "
            f"found {_describe(node)}"
        )
    if d is None:
        return
    for (name, shape), leaf in zip(node.fields, layout):
        expected = tuple(getattr(leaf, "shape", ()))
        if shape != expected:
            raise _Invalid(
                f"{where}.{name} has shape {list(shape)}; {family!r} with {k} components on "
                f"{d} columns needs {list(expected)}"
            )


def _describe(node: _Node) -> str:
    if node.kind == "tuple":
        return f"a tuple of {len(node.items)} entries"
    return f"{node.kind} with fields {[name for name, _ in node.fields]}"


def _check_values(weights: np.ndarray, leaves: list) -> None:
    w = weights.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, rtol=1e-5):
        raise _Invalid(
            f"`weights` must be finite, non-negative and sum to 1 (within 1e-5); they are {w.tolist()!r:.300}"
        )
    for where, leaf in leaves:
        if not np.all(np.isfinite(leaf)):
            raise _Invalid(f"{where} must be finite; it holds {np.count_nonzero(~np.isfinite(leaf))} non-finite values")


def _check_domain(family: Family, params) -> None:
    """The family's own check of its parameter space (:meth:`~mixtures.Family.check_params`) on host arrays."""
    try:
        family.check_params(params)
    except (ValueError, TypeError, ArithmeticError) as e:
        message = str(e).replace("`init.params", "`params")
        raise _Invalid(f"the parameters lie outside the parameter space of {family!r}: {message}") from None


def _leaf_names(node: _Node, where: str) -> list:
    if node.kind == "tuple":
        return [name for i, item in enumerate(node.items) for name in _leaf_names(item, f"{where}[{i}]")]
    return [f"{where}.{name}" for name, _ in node.fields]


# -- variational posteriors -------------------------------------------------------


def _as_posterior(weights, components, family: Family) -> VariationalMixture:
    """A VariationalMixture of JAX arrays (in the dtypes JAX gives the host arrays) from host NamedTuples."""
    cast = lambda v: jnp.asarray(v, checks.float_dtype_for(v.dtype))  # noqa: E731
    return VariationalMixture(jax.tree.map(cast, weights), jax.tree.map(cast, components), family)


def _check_conjugate(family: Family) -> None:
    if not family.conjugate:
        raise _Invalid(f"{family!r} has no conjugate posterior; a variational posterior cannot hold it")


def _posterior_features(family: Family, node: _Node) -> int:
    """D, the number of columns of the posterior mean that ``node`` (a posterior being saved) describes."""
    _check_conjugate(family)
    _compare(_posterior_layout(family, 1, 1, probe=True), node, "components", family, 1, None)  # the classes
    if isinstance(family, Independent):
        return family.n_columns
    if isinstance(family, Gaussian):
        shape = node.fields[0][1]  # the means, (K, D)
        if len(shape) != 2:
            raise _Invalid(f"`components.mean` must have shape (K, D); it has {list(shape)}")
        return shape[1]
    abstract = ConjugatePrior(*(jax.ShapeDtypeStruct(shape, np.float32) for _, shape in node.fields))
    try:
        d = family.n_features(jax.eval_shape(family.posterior_mean, abstract))
    except Exception as e:  # noqa: BLE001 - any failure is a posterior that does not fit the family
        raise _Invalid(
            f"`components`: {family!r} cannot compute a posterior mean from {_describe(node)} "
            f"({type(e).__name__}: {e})"
        ) from None
    if isinstance(d, bool) or not isinstance(d, numbers.Integral):
        raise _Invalid(f"`components`: {family!r} reads D = {d!r:.50} columns from its posterior mean")
    return int(d)


def _posterior_layout(family: Family, k: int, d: int, probe: bool = False):
    """The posterior of ``k`` components of ``family`` on ``d`` columns, as abstract arrays.

    With ``probe``, only the classes and field names are right (nothing of the family's runs).
    """
    def abstract(*shape):
        return jax.ShapeDtypeStruct(shape, np.float32)

    if isinstance(family, Independent):
        if d != family.n_columns and not probe:
            raise _Invalid(f"the groups of {family!r} cover {family.n_columns} columns; the header gives D = {d}")
        return tuple(_posterior_layout(part, k, len(columns), probe) for part, columns in family.components)
    if isinstance(family, Gaussian):
        scale = {"full": (k, d, d), "diag": (k, d)}.get(family.layout, (k,))
        return GaussianPrior(abstract(k, d), abstract(k), abstract(k), abstract(*scale))
    if isinstance(family, ExponentialFamily):
        if probe:
            return ConjugatePrior(abstract(k), abstract(k, 1))
        try:
            stats = jax.eval_shape(family.sufficient_stats, abstract(d))
        except Exception as e:  # noqa: BLE001
            raise _Invalid(f"{family!r} cannot compute T(x) for D = {d} columns ({type(e).__name__}: {e})") from None
        if len(getattr(stats, "shape", ())) != 1:
            raise _Invalid(f"{family!r} gives T(x) the shape {getattr(stats, 'shape', None)}; a posterior needs (M,)")
        return ConjugatePrior(abstract(k), abstract(k, stats.shape[0]))
    raise _Invalid(
        f"{family!r} keeps its posterior in its own type; only Gaussian, exponential-family and Independent "
        "posteriors (GaussianPrior, ConjugatePrior and tuples of them) can be saved"
    )


def _check_posterior_layout(family: Family, weights: _Node, components: _Node, d: int):
    """Checks the declared posterior against ``family`` on ``d`` columns; returns the weights' and components' layouts.

    Nothing of the family's runs beyond its constructor and
    :meth:`~mixtures.Family.params_layout` until the number of its
    parameters is known to be bounded by the file's size.
    """
    _check_conjugate(family)
    cls = _WEIGHT_POSTERIORS.get(weights.kind)
    if cls is None:
        raise _Invalid(f"`weights` must be {' or '.join(_WEIGHT_POSTERIORS)}; found {_describe(weights)}")
    if tuple(name for name, _ in weights.fields) != cls._fields:
        raise _Invalid(f"`weights` must be {cls.__name__} with fields {list(cls._fields)}; found {_describe(weights)}")
    shape = weights.fields[0][1]
    if len(shape) != 1 or shape[0] < 1:
        raise _Invalid(f"`weights.{cls._fields[0]}` must have shape (K,) with K ≥ 1; it has {list(shape)}")
    k = shape[0]
    for name, other in weights.fields:
        if other != shape:
            raise _Invalid(f"`weights.{name}` has shape {list(other)}; it must be {list(shape)}, as `weights` is")
    weights_layout = cls(*(jax.ShapeDtypeStruct((k,), np.float32) for _ in cls._fields))
    size = _size(components)
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= max(1, size):
        raise _Invalid(
            f"the header's n_features is {d!r:.50}; expected 1 ≤ D ≤ {size}, the numbers the posterior holds"
        )
    try:
        params = family.params_layout(k, d)
        n_params = sum(math.prod(getattr(leaf, "shape", ())) for leaf in jax.tree.leaves(params))
    except Exception as e:  # noqa: BLE001
        raise _Invalid(f"{family!r} has no parameters for {k} components on D = {d} columns: {e}") from None
    if n_params > _PARAMS_PER_NUMBER * size + _PARAMS_ALLOWANCE:
        raise _Invalid(
            f"{family!r} with {k} components on {d} columns has {n_params} parameters, far more than the "
            f"{size} numbers of `components`: the family does not describe this posterior"
        )
    layout = _posterior_layout(family, k, d)
    _compare(layout, components, "components", family, k, d)
    return weights_layout, layout


def _check_posterior_values(family: Family, layout, weight_leaves: list, component_leaves: list) -> None:
    """Finite arrays, positive weight parameters and each family's posterior domain; leaves are (name, host array).

    ``layout`` is the components' layout from :func:`_check_posterior_layout`.
    """
    for where, leaf in weight_leaves + component_leaves:
        if not np.all(np.isfinite(leaf)):
            raise _Invalid(f"{where} must be finite; it holds {np.count_nonzero(~np.isfinite(leaf))} non-finite values")
    for where, leaf in weight_leaves:
        _positive(leaf, where)
    values = jax.tree.unflatten(jax.tree.structure(layout), [leaf for _, leaf in component_leaves])
    _check_component_posterior(family, values, "components")


def _positive(leaf: np.ndarray, where: str, above: float = 0.0, text: str = "positive") -> None:
    """Refuses entries ≤ ``above`` of a (K, ...) array, naming the first such component."""
    flat = np.asarray(leaf, np.float64).reshape(leaf.shape[0], -1)
    bad = np.argwhere(flat <= above)
    if len(bad):
        k = int(bad[0][0])
        raise _Invalid(f"`{where}` must be {text}; component {k} has {flat[k].tolist()!r:.200}")


def _check_component_posterior(family: Family, posterior, where: str) -> None:
    """A component posterior's domain (host arrays): positive counts, enough degrees of freedom, positive scales."""
    if isinstance(family, Independent):
        for i, ((part, _), p) in enumerate(zip(family.components, posterior)):
            _check_component_posterior(part, p, f"{where}[{i}]")
        return
    if isinstance(family, ExponentialFamily):
        _positive(posterior.pseudo_count, f"{where}.pseudo_count")
        return
    # A Gaussian: shrinkage κ > 0, dof ν > D − 1 (a Wishart of dimension D) or > 0 (gammas), scale Ψ positive
    # (definite).
    d = posterior.mean.shape[-1]
    _positive(posterior.shrinkage, f"{where}.shrinkage")
    if family.layout == "full":
        _positive(posterior.dof, f"{where}.dof", d - 1.0, f"above D − 1 = {d - 1} for {family!r}")
        scale = np.asarray(posterior.scale, np.float64)
        eps = np.finfo(posterior.scale.dtype).eps
        asymmetry = np.max(np.abs(scale - np.swapaxes(scale, -1, -2)), axis=(-2, -1))
        bound = 64 * d * eps * np.max(np.abs(scale), axis=(-2, -1))
        if np.any(asymmetry > bound):
            k = int(np.argmax(asymmetry > bound))
            raise _Invalid(f"`{where}.scale` must hold symmetric matrices; component {k} is not symmetric")
        for k, matrix in enumerate(scale):
            try:
                np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                raise _Invalid(
                    f"`{where}.scale` must hold positive-definite matrices; component {k} is not positive definite"
                ) from None
    else:
        _positive(posterior.dof, f"{where}.dof")
        _positive(posterior.scale, f"{where}.scale")
    if family.model in _SHARED_MODELS:
        for name in ("dof", "scale"):
            leaf = np.asarray(getattr(posterior, name), np.float64)
            tol = 1e-6 if getattr(posterior, name).dtype == np.float64 else 1e-3
            if not np.allclose(leaf, leaf[:1], rtol=tol, atol=0.0):
                raise _Invalid(
                    f"`{where}.{name}` must be the same for every component: {family!r} shares one covariance"
                )


def _exponential_means(family: Family, components) -> list:
    """The ``mean`` of every exponential-family part of a posterior, depth first."""
    if isinstance(family, Independent):
        return [m for (part, _), p in zip(family.components, components) for m in _exponential_means(part, p)]
    return [components.mean] if isinstance(family, ExponentialFamily) else []


def _exponential_parts(family: Family, where: str) -> list:
    """(name, family) of every exponential-family part of a posterior, depth first."""
    if isinstance(family, Independent):
        return [
            item for i, (part, _) in enumerate(family.components) for item in _exponential_parts(part, f"{where}[{i}]")
        ]
    return [(where, family)] if isinstance(family, ExponentialFamily) else []


def _properness(family: Family, components) -> list:
    """Every exponential-family part of a posterior, depth first: log Z(τₖ, νₖ) (K,), η (K, M), residuals (K,).

    The conjugate posterior is proper iff its mean μ = τ/ν lies inside the
    family's mean space, the range of ∇A (Diaconis and Ylvisaker, 1979).
    η is the posterior mean's natural parameter and the residual
    max |∇A(η) − μ| relative to max |μ|: small, η proves μ inside. (A
    family's closed-form M-step floors its parameters, so a large residual
    is settled by :func:`_newton_residual`.)
    """
    if isinstance(family, Independent):
        return [item for (part, _), p in zip(family.components, components) for item in _properness(part, p)]
    if not isinstance(family, ExponentialFamily):
        return []
    a, mean = components.pseudo_count, components.mean
    log_z = jax.vmap(family.log_conjugate_normalizer)(a[:, None] * mean, a)
    eta = jax.vmap(family.to_natural)(family.posterior_mean(components))
    return [(log_z, eta, _relative_residual(family, eta, mean))]


def _relative_residual(family: ExponentialFamily, eta, mean):
    back = jax.vmap(jax.grad(family.log_partition))(eta)
    tiny = jnp.finfo(mean.dtype).tiny
    return jnp.max(jnp.abs(back - mean), axis=-1) / (jnp.max(jnp.abs(mean), axis=-1) + tiny)


@functools.partial(jax.jit, static_argnums=0)
def _newton_residual(family: ExponentialFamily, mean, start):
    """The residual after Newton's method on the convex A(η) − ⟨η, μ⟩ from ``start`` (the M-step's solver).

    It finds η with ∇A(η) = μ when μ lies inside the mean space; otherwise
    η runs off towards the boundary and ∇A(η) stays away from μ.
    """
    eta = jax.vmap(lambda m, s: newton_natural_from_mean(family.log_partition, m, s))(mean, start)
    return _relative_residual(family, eta, mean)


@jax.jit
def _posterior_summary(posterior: VariationalMixture):
    """``posterior.mixture``, the expected parameters and the log-normalisers, compiled as one program.

    (Op by op, a Newton solve in ``posterior_mean`` dispatches seconds of small ops.)
    """
    family = posterior.family
    return posterior.mixture, family.expected_params(posterior.components), _properness(family, posterior.components)


def _check_posterior_mean(posterior: VariationalMixture, d: int) -> None:
    """The posterior mean (``.mixture``): finite, laid out as the parameters on D = ``d`` columns, in their space."""
    family = posterior.family
    try:
        mixture, expected, proper = _posterior_summary(posterior)
        weights = np.asarray(mixture.weights)
        params = jax.tree.map(np.asarray, mixture.params)
        layout = family.params_layout(posterior.n_components, d)
        fits = jax.tree.structure(params) == jax.tree.structure(layout) and all(
            a.shape == tuple(b.shape) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(layout))
        )
    except Exception as e:  # noqa: BLE001 - any failure is a posterior outside the family's domain
        raise _Invalid(
            f"{family!r} cannot compute the posterior mean (`.mixture`) of this posterior ({type(e).__name__}: {e})"
        ) from None
    if not fits or family.n_features(params) != d:
        raise _Invalid(
            f"the posterior mean (`.mixture`) of this posterior is not laid out as {family!r}'s parameters on "
            f"D = {d} columns"
        )
    for (name, part), (log_z, eta, residual), leaf in zip(
        _exponential_parts(family, "components"), proper, _exponential_means(family, posterior.components)
    ):
        bad = np.flatnonzero(~np.isfinite(np.asarray(log_z)))
        if len(bad):
            raise _Invalid(
                f"`{name}` is not a proper posterior of {part!r}: its normaliser log Z(τ, ν) "
                f"(log_conjugate_normalizer) is not finite for component {int(bad[0])}"
            )
        residual = np.asarray(residual)
        tol = np.sqrt(np.finfo(residual.dtype).eps)
        if not np.all(residual <= tol):
            try:
                residual = np.asarray(_newton_residual(part, leaf, eta))
            except Exception as e:  # noqa: BLE001
                raise _Invalid(f"{part!r} cannot solve for the natural parameters of `{name}.mean`: {e}") from None
        bad = np.flatnonzero(~(residual <= tol))
        if len(bad):
            k = int(bad[0])
            raise _Invalid(
                f"`{name}` is not a proper posterior of {part!r}: component {k}'s `mean` "
                f"{np.asarray(leaf)[k].tolist()!r:.200} lies outside the family's mean space (no natural "
                "parameter has it as its mean)"
            )
    if not all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(expected)):
        raise _Invalid(
            f"`components` is not a proper posterior of {family!r}: its expected parameters "
            "(expected_params) are not finite"
        )
    leaves = [("`mixture.weights`", weights)] + [
        (f"`mixture.params{jax.tree_util.keystr(path)}`", leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    ]
    for name, leaf in leaves:
        if not np.all(np.isfinite(leaf)):
            raise _Invalid(
                f"the posterior mean (`.mixture`) under {family!r} is not finite ({name} holds "
                f"{np.count_nonzero(~np.isfinite(leaf))} non-finite values): the posterior lies outside the "
                "family's domain"
            )
    try:
        family.check_params(params)
    except (ValueError, TypeError, ArithmeticError) as e:
        message = str(e).replace("`init.params", "`mixture.params")
        raise _Invalid(
            f"the posterior mean (`.mixture`) lies outside the parameter space of {family!r}: {message}"
        ) from None

