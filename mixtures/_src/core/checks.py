"""Host-side validation of user input.

Every check here runs on concrete values before anything is traced, and raises
``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value)
with a message naming the argument, what was received and what was expected.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """Whether ``x`` is an abstract value inside a JAX transformation."""
    return isinstance(x, jax.core.Tracer)


def float_dtype_for(dtype) -> np.dtype:
    """The floating dtype data of ``dtype`` is computed in.

    float64 needs JAX's x64 mode; without it float64 input is computed in
    float32, which is JAX's own rule for every array it is given.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64 and jax.config.read("jax_enable_x64"):
        return np.dtype(np.float64)
    if dtype == np.float64 or dtype == np.float32:
        return np.dtype(np.float32)
    if jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer):
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))  # the default float
    raise TypeError(f"expected real numbers (a floating or integer dtype); received dtype {dtype}.")


def as_data(x, name: str = "x", n_features: int | None = None):
    """Checks and converts a data matrix of shape (N, D).

    Accepts any array-like of real numbers: floating dtypes are kept (float64
    only with x64 enabled), integer dtypes are converted to the default float.

    Args:
      x: the array-like to check.
      name: the argument's name, used in messages.
      n_features: if given, the number of columns required.

    Returns:
      A ``jax.Array`` of shape (N, D) and floating dtype. Traced input is
      returned unchanged apart from its dtype; only its shape is checked.
    """
    if is_traced(x):
        _check_kind_and_shape(x, name, n_features)
        return jnp.asarray(x, dtype=float_dtype_for(x.dtype))
    return to_device(as_host_data(x, name, n_features))


def as_host_data(x, name: str = "x", n_features: int | None = None, *, allow_missing: bool = False) -> np.ndarray:
    """:func:`as_data` on the host: the checked (N, D) NumPy array in its compute dtype.

    Example:
      >>> import numpy as np
      >>> from mixtures._src.core.checks import as_host_data
      >>> as_host_data([[1, 2]]).dtype.kind  # integers become the default float
      'f'
      >>> as_host_data(np.array([[0.0, np.nan]], np.float32), "batches[2]")
      Traceback (most recent call last):
      ...
      ValueError: `batches[2]` must contain only finite values in float32; received nan at row 0, column 1; NaN marks a missing entry only with missing="marginalize".
    """
    if isinstance(x, jax.Array):
        held_here(x, name)
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"`{name}` must be an array-like of real numbers with shape "
                f"(n_samples, n_features); could not convert a {type(x).__name__}: {err}"
            ) from None
    _check_kind_and_shape(arr, name, n_features)
    target = float_dtype_for(arr.dtype)
    values = np.asarray(arr)
    with np.errstate(over="ignore", under="ignore"):
        converted = values.astype(target, copy=False)  # checked in the dtype it is computed in
    bad = ~np.isfinite(converted)
    if allow_missing:
        bad &= ~np.isnan(values)
    if np.any(bad):
        bad = np.argwhere(bad)[0]
        hint = (
            " (too large for float32: enable JAX's x64 mode for float64)." if np.isfinite(values[bad[0], bad[1]])
            else "; NaN marks a missing entry only with missing=\"marginalize\"." if np.isnan(values[bad[0], bad[1]])
            else "."
        )
        raise ValueError(
            f"`{name}` must contain only finite values in {target}; received "
            f"{values[bad[0], bad[1]]} at row {bad[0]}, column {bad[1]}" + hint
        )
    return converted


def held_here(x, name: str) -> None:
    """Refuses a ``jax.Array`` whose rows no single process holds (split over ``jax.distributed`` processes).

    Every front end but :func:`mixtures.fit` reads its data on the host;
    each process raises this at once, before anything collective, so none
    waits for another.
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        raise ValueError(
            f"`{name}` is a jax.Array split over {jax.process_count()} processes (jax.distributed), and this "
            "function reads its rows on the host, which no single process can: pass the rows this process holds, "
            "or gather them first (jax.experimental.multihost_utils.process_allgather). mx.fit fits such arrays "
            "as they are."
        )


def _check_kind_and_shape(arr, name, n_features) -> None:
    dtype = np.dtype(arr.dtype)
    if dtype == np.bool_ or not (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ):
        raise TypeError(
            f"`{name}` must hold real numbers (a floating or integer dtype); "
            f"received dtype {dtype}."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D with shape (n_samples, n_features); received "
            f"an array of shape {tuple(arr.shape)}. Reshape 1-D data with "
            f"x.reshape(-1, 1) (one feature) or x.reshape(1, -1) (one sample)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one sample and one feature; received "
            f"shape {tuple(arr.shape)}."
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"`{name}` must have {n_features} features (columns), as the mixture "
            f"was fitted with; received {arr.shape[1]}."
        )


def to_device(values, dtype=None) -> jax.Array:
    """A host value as a ``jax.Array`` (of ``dtype`` when given), copied without compiling anything.

    ``jnp.asarray`` of a NumPy array runs (and on first sight of a shape,
    compiles) a small XLA program; ``jax.device_put`` only transfers. The
    validation path uses this so that bad input is rejected before any
    compilation and valid input costs no extra programs.
    """
    if isinstance(values, jax.Array) and (dtype is None or values.dtype == dtype):
        return values
    return jax.device_put(np.asarray(values, dtype=dtype))


def components_within_rows(n_components: int, n_positive: int) -> None:
    """Refuses more components than rows of positive weight (each component needs a row of its own).

    Example:
      >>> components_within_rows(3, 2)
      Traceback (most recent call last):
      ...
      ValueError: `n_components` (3) must be at most the number of rows with positive `sample_weight` (2).
    """
    if n_components > n_positive:
        raise ValueError(
            f"`n_components` ({n_components}) must be at most the number of rows with positive "
            f"`sample_weight` ({n_positive})."
        )


def as_sample_weight(weight, n_samples: int, name: str = "sample_weight", dtype=None):
    """Checks per-sample weights: shape (N,), finite, non-negative, not all zero.

    Returns them unchanged, or as a ``jax.Array`` of ``dtype`` when one is given.
    """
    if weight is None:
        return None
    if is_traced(weight) and tuple(weight.shape) != (n_samples,):
        raise ValueError(
            f"`{name}` must have shape ({n_samples},), one weight per sample; received shape {tuple(weight.shape)}."
        )
    if not is_traced(weight):
        try:
            values = np.asarray(weight)
        except (TypeError, ValueError):
            values = np.asarray(weight, dtype=object)
        if values.dtype == np.bool_ or not (
            np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
        ):
            raise TypeError(
                f"`{name}` must hold real numbers; received dtype {values.dtype}."
            )
        if values.shape != (n_samples,):
            raise ValueError(
                f"`{name}` must have shape ({n_samples},), one weight per sample; "
                f"received shape {values.shape}."
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            i = int(np.argmax(~np.isfinite(values) | (values < 0)))
            raise ValueError(
                f"`{name}` must be finite and non-negative; received {values[i]} at index {i}."
            )
        if not np.any(values > 0):
            raise ValueError(f"`{name}` must have at least one positive weight; all are zero.")
    if dtype is None:
        return weight
    return jnp.asarray(weight, dtype) if is_traced(weight) else to_device(weight, dtype)


def unit_mean_weights(weight, dtype):
    """Row weights rescaled on the host to mean one, in ``dtype`` (None stays None).

    EM's fixed points and the mean log-likelihood per unit weight do not depend
    on the weights' scale; rescaling keeps the counts' absolute floor (10·ε) and
    float32 range away from the weights a user happens to choose (summing to
    one, or tiny).
    """
    if weight is None:
        return None
    values = np.asarray(weight, np.float64)
    return to_device(values * (values.shape[0] / values.sum()), dtype)


def positive_int(value, name: str, *, upper: int | None = None, upper_name: str = "") -> int:
    """Checks a positive Python integer, optionally bounded above."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive integer; received {value!r}.")
    value = int(value)
    if value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value}.")
    if upper is not None and value > upper:
        raise ValueError(f"`{name}` must be at most {upper_name} ({upper}); received {value}.")
    return value


MAX_ITER = 2**31 - 1
"""The largest ``max_iter``: the compiled loop counts iterations in int32."""

RESTARTS_MEMORY_BYTES = 2**34
"""The memory (16 GiB) the restarts run side by side may need before ``n_init`` is refused."""


def max_iter(value, name: str = "max_iter") -> int:
    """Checks ``max_iter``: a positive integer that fits the compiled loop's int32 counter.

    Example:
      >>> from mixtures._src.core.checks import max_iter
      >>> max_iter(2**31)
      Traceback (most recent call last):
      ...
      ValueError: `max_iter` must be at most 2**31 − 1, the largest int32 (the compiled loop counts iterations in int32) (2147483647); received 2147483648.
    """
    return positive_int(
        value, name, upper=MAX_ITER,
        upper_name="2**31 − 1, the largest int32 (the compiled loop counts iterations in int32)",
    )


def restarts_fit_in_memory(
    n_restarts: int, *, n_components: int, n_features: int, history: int, chunk_size: int, n_rows: int,
    itemsize: int, name: str = "`n_init`",
) -> None:
    """Refuses more restarts than :data:`RESTARTS_MEMORY_BYTES` can hold side by side.

    Each restart, run under ``jax.vmap`` in one program, holds at least its
    parameters (K (D² + D + 1) numbers at most), the part of its history a
    compiled call keeps (``history`` numbers: the most iterations of one
    segment) and one block of responsibilities (min(chunk, N) × K): a
    lower bound on what it needs, so an impossible ``n_init`` is refused at
    once instead of failing (or swapping) after minutes.

    Example:
      >>> from mixtures._src.core.checks import restarts_fit_in_memory
      >>> restarts_fit_in_memory(10**9, n_components=2, n_features=2, history=100, chunk_size=256,
      ...                        n_rows=20, itemsize=4)
      Traceback (most recent call last):
      ...
      ValueError: `n_init` (1000000000 restarts) would need at least 574 GiB: restarts run side by side in one program, each holding its parameters, a history buffer of 100 values and a block of responsibilities (616 bytes), and the limit is 16 GiB; use at most 27889398.
    """
    d, k = n_features, n_components
    per_restart = itemsize * (k * (d * d + d + 1) + history + min(chunk_size, n_rows) * k)
    if n_restarts * per_restart > RESTARTS_MEMORY_BYTES:
        raise ValueError(
            f"{name} ({n_restarts} restarts) would need at least {n_restarts * per_restart / 2**30:.0f} GiB: "
            "restarts run side by side in one program, each holding its parameters, a history buffer of "
            f"{history} values and a block of responsibilities ({per_restart} bytes), and the "
            f"limit is {RESTARTS_MEMORY_BYTES // 2**30} GiB; use at most {RESTARTS_MEMORY_BYTES // per_restart}."
        )


def non_negative_float(value, name: str) -> float:
    """Checks a finite, non-negative real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a non-negative real number; received {value!r}.")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be finite and non-negative; received {value}.")
    return value


def hashable_family(family, name: str = "family") -> None:
    """Raises ``TypeError`` unless ``family`` is hashable: it is a static argument of the compiled programs."""
    try:
        hash(family)
    except TypeError:
        raise TypeError(
            f"`{name}` must be hashable (a frozen dataclass of plain values: it is part of the "
            f"compiled program's identity); {type(family).__name__} is not."
        ) from None


def prng_key(key, name: str = "key"):
    """Checks a JAX PRNG key: a typed key (``jax.random.key``) or a raw uint32 (2,) key."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`{name}` must be a single PRNG key; received a key array of shape {key.shape}.")
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(jnp.asarray(key))
    raise TypeError(
        f"`{name}` must be a JAX PRNG key such as jax.random.key(0); received {key!r}."
    )


def as_labels(labels, n_samples: int, n_components: int, name: str = "labels"):
    """Checks partial labels: (N,) integers in −1..K−1 (−1 = unlabelled); returns int32 or None."""
    if labels is None:
        return None
    values = np.asarray(labels)
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.integer):
        if np.issubdtype(values.dtype, np.floating) and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        else:
            raise TypeError(f"`{name}` must hold integers (−1 for unlabelled rows); received dtype {values.dtype}.")
    if values.shape != (n_samples,):
        raise ValueError(f"`{name}` must have shape ({n_samples},), one label per sample; received shape {values.shape}.")
    bad = (values < -1) | (values >= n_components)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"`{name}` must be −1 (unlabelled) or a component index in 0..{n_components - 1}; "
            f"received {values[i]} at index {i}."
        )
    return to_device(values, np.int32)


def symmetric_positive_definite(mats: np.ndarray, name: str) -> np.ndarray:
    """Checks (…, D, D) matrices on the host; returns their Cholesky factors.

    Raises:
      ValueError: naming ``name`` if a matrix is not symmetric or not positive definite.
    """
    if not np.allclose(mats, np.swapaxes(mats, -1, -2), rtol=1e-6, atol=1e-12):
        raise ValueError(f"`{name}` must be symmetric.")
    try:
        return np.linalg.cholesky(mats)
    except np.linalg.LinAlgError:
        raise ValueError(f"`{name}` must be positive definite.") from None
