"""``init="hc"``: mclust's model-based hierarchical start, checked against mclust itself.

``tests/mclust/reference.json`` holds mclust's partitions
``hclass(hc(x, "VVV", use = "SVD"), K)`` (K = 1..5) of Old Faithful, iris and wine5,
and the VVV fits ``me`` makes from them; the agglomeration here must give the same
partitions, and EM from its start the same fixed points. When R and mclust are
installed, one fresh random data set is also compared with mclust's whole tree.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixtures as mx
from tests.helpers import mclust_data, mclust_reference
from mixtures._src.fitting import hierarchical
from mixtures._src.fitting.init import initialize, tree_classes
from mixtures.sklearn import GaussianMixture, MixtureModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATASETS = ("old_faithful", "iris", "wine5")
KS = (1, 2, 3, 4, 5)
FAMILY = mx.Gaussian("full", reg_covar=0.0)  # mclust's VVV without regularisation
TIGHT = dict(tol=1e-14, max_iter=20000)
LOGLIK_RTOL = 1e-10  # measured: 2e-14 at most (Old Faithful, K = 5)


reference, data = mclust_reference, mclust_data


def mclust_classes(name: str, k: int) -> np.ndarray:
    return np.argmax(np.array(reference()["datasets"][name]["z"][str(k)]), axis=1)


def mclust_loglik(name: str, k: int) -> float:
    (fit,) = [f for f in reference()["datasets"][name]["fits"] if f["model"] == "VVV" and f["K"] == k]
    return fit["loglik"]


def assert_same_partition(a, b):
    """Equal up to a relabelling of the classes: the pairs (a, b) are as many as the classes of each."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert len(pairs) == len(set(a.tolist())) == len(set(b.tolist())), "the partitions differ"


# -- the partitions --------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_partitions_are_mclusts(name):
    classes = hierarchical.classes(data(name), KS)
    for k, row in zip(KS, classes):
        assert_same_partition(row, mclust_classes(name, k))
        # Numbered as hclass numbers them, too: by their first row.
        np.testing.assert_array_equal(row, mclust_classes(name, k))


def test_the_tree_is_deterministic():
    x = data("iris")  # the classes depend on the data alone: no key, no family
    np.testing.assert_array_equal(tree_classes("hc", x, [3, 2]), tree_classes("hc", x, [3, 2]))


def test_merges_and_cut_on_a_small_example():
    x = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [10.0, 0.2], [5.0, 9.0]])
    tree = hierarchical.merges(x)
    assert tree.shape == (4, 2) and tree[:2].tolist() == [[0, 2], [1, 3]]
    np.testing.assert_array_equal(hierarchical.cut(tree, 5, [5, 1]), [[0, 1, 2, 3, 4], [0, 0, 0, 0, 0]])


# -- EM from the start -----------------------------------------------------------------------


def test_fit_from_hc_reaches_mclusts_fixed_point_whatever_the_key():
    x = data("old_faithful")
    result = mx.fit(x, FAMILY, 3, key=jax.random.key(0), init="hc", n_init=2, **TIGHT)
    # Every restart starts alike, so ends alike.
    np.testing.assert_array_equal(result.all_log_likelihoods[0], result.all_log_likelihoods[1])
    np.testing.assert_allclose(float(result.log_likelihood) * len(x), mclust_loglik("old_faithful", 3), rtol=LOGLIK_RTOL)
    other = mx.fit(x, FAMILY, 3, key=jax.random.key(1), init="hc", n_init=2, **TIGHT)
    np.testing.assert_array_equal(other.mixture.params.means, result.mixture.params.means)
    assert int(other.n_iter) == int(result.n_iter)
    keyless = mx.fit(x, FAMILY, 3, init="hc", n_init=2, **TIGHT)  # "hc" draws nothing: no key is needed
    np.testing.assert_array_equal(keyless.mixture.params.means, result.mixture.params.means)


def test_select_cuts_one_tree_at_every_k():
    x = data("old_faithful")
    selection = mx.select(x, FAMILY, KS, key=jax.random.key(0), init="hc", **TIGHT)
    for row in selection.table:
        k = row["n_components"]
        np.testing.assert_allclose(row["log_likelihood"] * len(x), mclust_loglik("old_faithful", k), rtol=LOGLIK_RTOL)
    assert selection.n_components == 2  # mclust's Mclust picks 2 for VVV too
    keyless = mx.select(x, FAMILY, KS, init="hc", **TIGHT)
    assert [row["log_likelihood"] for row in keyless.table] == [row["log_likelihood"] for row in selection.table]


def test_the_estimator_starts_from_hc():
    """GaussianMixture(init_params="hc"): its start is the class Gaussians of mclust's partition, and EM from it mx.fit's."""
    x = data("iris")
    start = GaussianMixture(3, covariance_type="full", reg_covar=0.0, init_params="hc", max_iter=0).fit(x)
    classes = mclust_classes("iris", 3)
    found = sorted(start.means_.tolist())
    expected = sorted(np.stack([x[classes == k].mean(axis=0) for k in range(3)]).tolist())
    np.testing.assert_allclose(found, expected, rtol=1e-12)
    fitted = GaussianMixture(3, covariance_type="full", reg_covar=0.0, init_params="hc", tol=1e-10, max_iter=1000).fit(x)
    direct = mx.fit(x, FAMILY, 3, init="hc", tol=1e-10, max_iter=1000)
    np.testing.assert_allclose(fitted.means_, direct.mixture.params.means, rtol=1e-12)
    assert reference()["datasets"]["old_faithful"]["mclust"]["VVV"]["G"] == 2


# -- more rows than the subset ---------------------------------------------------------------


def test_more_rows_than_the_subset_start_from_the_subsets_classes(monkeypatch):
    monkeypatch.setattr(hierarchical, "SUBSET", 50)
    rng = np.random.default_rng(3)
    n = 130
    x = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))
    (classes,) = tree_classes("hc", x, [3])
    rows = (np.arange(50) * n) // 50  # evenly spaced
    assert np.all(np.asarray(classes)[np.setdiff1d(np.arange(n), rows)] == -1)
    np.testing.assert_array_equal(
        np.asarray(classes)[rows], hierarchical.cut(hierarchical.merges(hierarchical.svd_transform(x[rows])), 50, [3])[0]
    )
    # The start is the class Gaussians of the subset alone (mclust's mstep on its subset).
    start = jax.jit(initialize, static_argnums=(0, 1, 2, 6))("hc", FAMILY, 3, None, jnp.asarray(x), None, 64, classes=classes)
    sub, z = x[rows], np.asarray(classes)[rows]
    np.testing.assert_allclose(start.weights, np.bincount(z) / 50, rtol=1e-12)
    for k in range(3):
        np.testing.assert_allclose(start.params.means[k], sub[z == k].mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(start.params.covariances[k], np.cov(sub[z == k].T, bias=True), rtol=1e-8)
    # mx.fit takes the same start: its first E-step scores it on every row.
    result = mx.fit(x, FAMILY, 3, key=jax.random.key(0), init="hc", max_iter=3, tol=0.0)
    np.testing.assert_allclose(float(result.history[0]), float(jnp.mean(start.log_prob(x))), rtol=1e-12)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: mx.fit(np.ones((10, 2)), mx.Poisson(), 2, key=jax.random.key(0), init="hc"),
        lambda: mx.select(np.ones((10, 2)), mx.Poisson(), [1, 2], key=jax.random.key(0), init="hc"),
        lambda: mx.select(np.ones((10, 2)), [mx.Gaussian(), mx.Poisson()], [1, 2], key=jax.random.key(0), init="hc"),
        lambda: mx.fit_stream(np.ones((10, 2)), mx.Poisson(), 2, key=jax.random.key(0), init="hc"),
        lambda: MixtureModel(mx.Poisson(), 2, init_params="hc").fit(np.ones((10, 2))),
    ],
    ids=["fit", "select", "select-two-families", "fit_stream", "estimator"],
)
def test_hc_starts_gaussian_families_only(call):
    with pytest.raises(ValueError, match=r"`init='hc'` .* starts Gaussian mixtures only; received a Poisson family"):
        call()


def test_only_hc_goes_without_a_key():
    x = data("iris")
    for call in (lambda: mx.fit(x, FAMILY, 3), lambda: mx.select(x, FAMILY, [1, 2])):
        with pytest.raises(TypeError, match=r"`key` must be a JAX PRNG key .*init='kmeans\+\+' draws from it"):
            call()


def test_hc_refuses_labels_and_needs_its_classes():
    x = data("iris")
    with pytest.raises(ValueError, match=r"`labels` cannot be combined with `init='hc'`"):
        mx.fit(x, FAMILY, 3, key=jax.random.key(0), init="hc", labels=np.full(150, -1))
    with pytest.raises(ValueError, match=r"`classes` must be given for `method='hc'`"):
        initialize("hc", FAMILY, 3, None, jnp.asarray(x), None, 150)
    with pytest.raises(ValueError, match=r"`classes` must be given for `method='hc'` .* and only then"):
        initialize("kmeans++", FAMILY, 3, jax.random.key(0), jnp.asarray(x), None, 150, classes=jnp.zeros(150, int))


# -- against R, when it is here --------------------------------------------------------------

_MCLUST_TREE = """
suppressPackageStartupMessages(library(mclust))
x <- as.matrix(read.csv(commandArgs(TRUE)[1], header = FALSE))
write.table(t(hc(x, modelName = "VVV", use = "SVD")), commandArgs(TRUE)[2], row.names = FALSE, col.names = FALSE)
"""


def _has_mclust() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(mclust)"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_mclust(), reason="needs R with mclust")
def test_a_fresh_random_tree_is_mclusts(tmp_path):
    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh every run; printed on failure
    rng = np.random.default_rng(seed)
    n, d = 300, 4
    x = rng.normal(scale=3.0, size=(5, d))[rng.integers(0, 5, n)] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.17g")
    (tmp_path / "tree.R").write_text(_MCLUST_TREE)
    subprocess.run(
        ["Rscript", str(tmp_path / "tree.R"), str(tmp_path / "x.csv"), str(tmp_path / "tree.txt")],
        check=True, capture_output=True, timeout=120,
    )
    theirs = np.loadtxt(tmp_path / "tree.txt", dtype=np.int64).reshape(-1, 2) - 1
    ours = hierarchical.merges(hierarchical.svd_transform(x))
    ks = list(range(1, 11))
    for k, a, b in zip(ks, hierarchical.cut(ours, n, ks), hierarchical.cut(theirs, n, ks)):
        assert np.array_equal(a, b), f"seed {seed}: the partitions into {k} classes differ"


def test_the_command_line_starts_from_hc_once(capsys):
    from mixtures.cli import main

    path = ROOT / reference()["datasets"]["old_faithful"]["path"]
    assert main(["fit", str(path), "-k", "3", "--init", "hc", "--float64", "--max-iter", "5", "--no-progress"]) == 0
    assert "restarts          1 (init hc, seed 0)" in capsys.readouterr().out
