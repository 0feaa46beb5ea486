"""Data-parallel EM: the rows split over the devices of a mesh, the sums added across them.

``mx.fit(x, ..., mesh=mesh)``, or ``x`` already split along its rows by a
``NamedSharding``, runs every EM iteration under ``jax.shard_map``: each
device runs the E-step and the accumulation over its own block of rows, in
row chunks as a single-device fit does; ``lax.psum`` adds the devices'
:class:`~mixtures.engine.Sums` (and Σₙ wₙ); the M-step, the convergence test
and the ``lax.while_loop`` then run replicated, on identical numbers, on
every device. The sums pass through
:func:`mixtures._chunks.sum_over_chunks`, which adds them across devices
while this module traces the per-device program
(:func:`mixtures._chunks.rows_split_over`), so the engine and the families
need no code of their own for it; a
:class:`~mixtures.gradient.GradientFamily`'s Q and gradient are summed the
same way.

The rows are split over all the axes of ``mesh``, in their order (a
``PartitionSpec`` of all the axis names on the row axis), or over the axes
``x``'s own ``NamedSharding`` names on its row axis. N need not be a multiple
of the number of devices P: the rows are padded to one with copies of the
first row (inside every family's domain) of weight zero, which add exactly
nothing to any sum.

The initialisation runs before the loop as ordinary compiled code on the N
valid rows, gathered onto every device (see :func:`valid_rows`), so a mesh
fit from a key computes what a single-device fit from that key does, up to
the order in which floating-point sums are added.

This module holds the host side (the mesh and sharding checks, the placement
of the rows) and the per-device loop, :func:`advance_loops` and :func:`finish_loops`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from mixtures._src.core import checks
from mixtures._src.engine import em as engine
from mixtures._src.engine.options import EMOptions, Rows
from mixtures._src.fitting import segments

__all__ = ["RowPlan", "check_sharded_rows", "advance_loops", "finish_loops", "keeps_placement", "place", "row_split", "valid_rows"]


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """How the N rows of a fit lie on the devices (static: part of the compiled program's identity).

    Attributes:
      mesh: the mesh, its axes of type ``Auto`` (ordinary code that runs on
        the split rows, the initialisation, is partitioned by XLA).
      axes: the mesh axes the rows are split over, in order.
      n_rows: N, the number of rows of the data.
    """

    mesh: Mesh
    axes: tuple
    n_rows: int

    @property
    def n_devices(self) -> int:
        """P, the number of blocks the rows are split into."""
        return math.prod(self.mesh.shape[a] for a in self.axes)

    @property
    def n_padded(self) -> int:
        """N rounded up to a multiple of P: the rows the devices hold, padding included."""
        return -(-self.n_rows // self.n_devices) * self.n_devices

    @property
    def rows(self) -> NamedSharding:
        """The sharding of an (N_padded, ...) array split along its first axis."""
        return NamedSharding(self.mesh, PartitionSpec(self.axes))


def _auto(mesh: Mesh) -> Mesh:
    """``mesh`` with every axis of type ``Auto`` (the same devices in the same layout)."""
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def _row_axes(sharding) -> tuple | None:
    """The mesh axes a NamedSharding splits the first array axis over (None if it does not)."""
    spec = sharding.spec
    rows = spec[0] if len(spec) else None
    if rows is None:
        return None
    return (rows,) if isinstance(rows, str) else tuple(rows)


def row_split(x, mesh) -> tuple[Mesh, tuple] | None:
    """The (mesh, row axes) a fit splits ``x`` over, or None for the single-device path (host-side).

    Args:
      x: ``fit``'s data argument, not yet validated.
      mesh: ``fit``'s ``mesh`` argument.

    Returns:
      None when ``mesh`` is None and ``x`` is not a ``jax.Array`` split
      along its rows by a ``NamedSharding``; else the mesh (as
      :attr:`RowPlan.mesh`) and the axes the rows go over: all of
      ``mesh``'s axes, or those of ``x``'s sharding.

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh``.
      ValueError: ``x`` is split along another axis than its rows, or
        (with ``mesh``) is split over devices of other processes in another
        way than ``mesh`` splits it.

    Example:
      >>> import jax, numpy as np
      >>> from mixtures._src.fitting.devices import row_split
      >>> row_split(np.zeros((4, 2)), None) is None
      True
      >>> mesh, axes = row_split(np.zeros((4, 2)), jax.make_mesh((1,), ("data",)))
      >>> axes
      ('data',)
    """
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(
            f"`mesh` must be a jax.sharding.Mesh (e.g. jax.make_mesh((jax.device_count(),), ('data',))) "
            f"or None; received {mesh!r}."
        )
    sharding = getattr(x, "sharding", None) if isinstance(x, jax.Array) and not checks.is_traced(x) else None
    if isinstance(sharding, NamedSharding):
        split = [entry for entry in sharding.spec[1:] if entry is not None]
        if split:
            raise ValueError(
                f"`x` must be split over devices along its rows only; its NamedSharding has "
                f"PartitionSpec {tuple(sharding.spec)}, which splits axis 1 (the features) too. "
                f"Shard it with PartitionSpec(row_axes, None)."
            )
    if mesh is not None:
        mesh = _auto(mesh)
        axes = tuple(mesh.axis_names)
        if isinstance(x, jax.Array) and not checks.is_traced(x) and not x.is_fully_addressable:
            if not x.sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec(axes)), x.ndim):
                raise ValueError(
                    "`x` spans the devices of several processes and is not split along its rows "
                    f"over all the axes of `mesh` {dict(mesh.shape)}: it cannot be gathered to be split "
                    "again. Pass mesh=None to use x's own sharding, or build x with "
                    "NamedSharding(mesh, PartitionSpec(mesh.axis_names))."
                )
        return mesh, axes
    if not isinstance(sharding, NamedSharding):
        return None
    axes = _row_axes(sharding)
    return None if axes is None else (_auto(sharding.mesh), axes)


def keeps_placement(x, split) -> bool:
    """Whether ``x`` already lies as ``split`` needs it: a jax.Array split evenly along its rows (host-side)."""
    if not isinstance(x, jax.Array) or checks.is_traced(x) or x.ndim < 1:
        return False
    mesh, axes = split
    plan = RowPlan(mesh, axes, x.shape[0])
    return x.shape[0] == plan.n_padded and x.sharding.is_equivalent_to(plan.rows, x.ndim)


def check_sharded_rows(x: jax.Array, family) -> jax.Array:
    """Validates a row-split ``x`` shard by shard on the host, without gathering it.

    Each process checks the rows it holds (every distinct row block once):
    real and finite in the compute dtype, and inside ``family``'s domain.
    A message names the block as ``x[start:stop]`` and counts rows from its
    start.

    Args:
      x: a ``jax.Array`` for which :func:`keeps_placement` holds.
      family: the component family.

    Returns:
      ``x`` in its compute dtype (see :func:`mixtures.fit`), on its devices.

    Raises:
      TypeError, ValueError: as :func:`mixtures._checks.as_data` and
        ``family.check_data`` do.
    """
    checks._check_kind_and_shape(x, "x", None)
    target = checks.float_dtype_for(x.dtype)
    converted = []
    for shard in x.addressable_shards:
        start, stop, _ = shard.index[0].indices(x.shape[0])
        if shard.replica_id == 0:
            values = checks.as_host_data(np.asarray(shard.data), f"x[{start}:{stop}]")
            try:
                family.check_data(values)
            except ValueError as err:
                raise ValueError(f"in the block x[{start}:{stop}] on {shard.device} (rows counted from {start}): {err}") from None
        if x.dtype != target:
            converted.append(jax.device_put(np.asarray(shard.data).astype(target), shard.device))
    if x.dtype == target:
        return x
    return jax.make_array_from_single_device_arrays(x.shape, x.sharding, converted)


def place(values, plan: RowPlan, fill) -> jax.Array:
    """A host array of N rows as an (N_padded, ...) ``jax.Array`` split along its rows (no compilation).

    Each device receives its block; the rows past N are ``fill`` (broadcast
    to a row). In a multi-process run every process passes the whole array
    and places the blocks of its own devices.

    Example:
      >>> import jax, numpy as np
      >>> from mixtures._src.fitting.devices import RowPlan, place, row_split
      >>> mesh, axes = row_split(np.zeros((3, 1)), jax.make_mesh((1,), ("data",)))
      >>> place(np.arange(3.0), RowPlan(mesh, axes, 3), fill=0.0).tolist()
      [0.0, 1.0, 2.0]
    """
    values = np.asarray(values)
    n = plan.n_rows

    def block(index):
        start, stop, _ = index[0].indices(plan.n_padded)
        rows = values[min(start, n):min(stop, n)]
        missing = stop - start - rows.shape[0]
        if missing:
            pad = np.broadcast_to(np.asarray(fill, values.dtype), (missing,) + values.shape[1:])
            rows = np.concatenate([rows, pad])
        return rows

    return jax.make_array_from_callback((plan.n_padded,) + values.shape[1:], plan.rows, block)


def valid_rows(plan: RowPlan, a):
    """The first N rows of a placed array (None stays None), for the initialisation, inside ``jit``.

    They are gathered onto every device (one copy of the rows per device while
    the initialisation runs), so that it computes, step for step, what it
    computes on one device; the EM iterations then use the split rows only.
    """
    if a is None:
        return None
    whole = NamedSharding(plan.mesh, PartitionSpec())
    return jax.lax.with_sharding_constraint(a[: plan.n_rows], whole)


def _split(plan: RowPlan, options: EMOptions) -> EMOptions:
    return options.replace(axes=dataclasses.replace(options.axes, rows=plan.axes))


def advance_loops(plan: RowPlan, states, rows: Rows, tol, prior, receiver, first, until, options: EMOptions):
    """One segment of EM iterations (:func:`~mixtures._src.fitting.segments.advance_all`) for R restarts, rows split over ``plan``'s devices.

    Args:
      plan: the :class:`RowPlan`.
      states: R loop states (:class:`~mixtures.engine.LoopState`), every
        leaf with a leading axis R.
      rows: (N_padded, D) data placed by :func:`place`, with (N_padded,)
        weights, zero on the padding (or None only when N is a multiple of
        P), and labels, −1 on the padding, or None.
      tol, prior, receiver, first, until: as
        :func:`~mixtures.engine.advance` takes them.
      options: ``options.chunk_size`` rows per block of each device's rows.

    Returns:
      :func:`~mixtures._src.fitting.segments.advance_all`'s four values,
      replicated on every device (restart r reports progress as restart r).
    """
    split = _split(plan, options)

    def per_device(states, rows, tol, prior, receiver, first, until):
        return segments.advance_all(
            states, rows, tol, split, prior=prior, first=first, until=until, receiver=receiver
        )

    by_rows, whole = PartitionSpec(plan.axes), PartitionSpec()
    run = jax.shard_map(
        per_device, mesh=plan.mesh, in_specs=(whole, by_rows, whole, whole, whole, whole, whole), out_specs=whole
    )
    return run(states, rows, tol, prior, receiver, first, until)


def finish_loops(plan: RowPlan, states, rows: Rows, tol, prior, options: EMOptions) -> engine.FitResult:
    """:func:`~mixtures.engine.finish_loop` for R restarts, rows split over ``plan``'s devices (leading axis R, no history)."""
    split = _split(plan, options)

    def per_device(states, rows, tol, prior):
        return segments.finish_all(states, rows, tol, split, prior=prior)

    by_rows, whole = PartitionSpec(plan.axes), PartitionSpec()
    run = jax.shard_map(per_device, mesh=plan.mesh, in_specs=(whole, by_rows, whole, whole), out_specs=whole)
    return run(states, rows, tol, prior)
