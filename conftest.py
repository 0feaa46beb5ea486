"""Test configuration: float64 available, implicit rank promotion an error; measured slow cases marked.

Compiled programs are kept in JAX's persistent compilation cache (``.jax-cache/`` beside
this file, or ``JAX_COMPILATION_CACHE_DIR``), set through the environment before JAX is
imported so that the test workers and every subprocess a test starts (the command line,
the examples, the multi-device worker) share it: a program compiled once in a run is
read back, not compiled again, and later runs start warm.

The suite runs with XLA:CPU's fusion off (``MIXTURES_XLA_CPU_FUSION=off``, the opt-in the
command line and the benchmarks take, inherited by the subprocesses): the tolerances of
the float32 tests were set under that setting, where float32 EM is faster and more
accurate on this machine (docs/performance.md).
"""

import os
import pathlib

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(pathlib.Path(__file__).parent / ".jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("MIXTURES_XLA_CPU_FUSION", "off")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Measured slow (8 s or more in a full run) but generated, so without a decorator of their
# own: docstring examples and one of scikit-learn's estimator checks. The others carry
# @pytest.mark.slow where they are defined.
SLOW_GENERATED = {
    "mixtures._src.fitting.fit.fit",
    "mixtures.testing.check_family",
    "test_sklearn_estimator_checks[GaussianMixture(covariance_type='diag',init_params='random_from_data',"
    "max_iter=5)-check_sample_weight_equivalence_on_dense_data]",
}


# Every family through scikit-learn's checks: those whose checks compile for minutes (StudentT's
# gradient M-step, Independent's two groups) are slow.
SLOW_FAMILY_CHECKS = ("StudentT", "Independent")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in SLOW_GENERATED:
            item.add_marker(pytest.mark.slow)
        elif getattr(item, "originalname", "") == "test_sklearn_estimator_checks_for_every_family" and any(
            name in item.name for name in SLOW_FAMILY_CHECKS
        ):
            item.add_marker(pytest.mark.slow)


# Every compiled XLA:CPU program keeps a few memory mappings (about 3) while JAX holds it, and
# a test worker compiles tens of thousands over the suite (many of them op by op, in eager
# code). Near the kernel's limit on mappings per process (vm.max_map_count, 65 530 here) the
# next compilation fails inside XLA and the worker dies (seen as a segfault or an abort in
# compilation, about 93 % of the way through a full run). Dropping JAX's in-memory caches
# when a worker's mappings pass half the limit frees them; programs come back from the
# persistent cache on disk.
_MAPS = pathlib.Path("/proc/self/maps")
_MAX_MAPS = pathlib.Path("/proc/sys/vm/max_map_count")


def _mapping_budget():
    try:
        return int(_MAX_MAPS.read_text()) // 2
    except (OSError, ValueError):
        return None


_BUDGET = _mapping_budget()


def pytest_runtest_teardown(item):
    if _BUDGET is None:
        return
    with _MAPS.open() as maps:
        count = sum(1 for _ in maps)
    if count > _BUDGET:
        jax.clear_caches()
