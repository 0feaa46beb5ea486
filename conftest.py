"""Test configuration: float64 available, implicit rank promotion an error; measured slow cases marked."""

import jax
import pytest

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


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in SLOW_GENERATED:
            item.add_marker(pytest.mark.slow)
