"""mx.fit_stream: exact EM over batches equals mx.fit on the concatenated data."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.fitting import sources

RTOL = 1e-6


def _assert_same_fit(a, b, rtol=RTOL):
    """Two FitResults agree: parameters, weights, log-likelihoods, histories, counts and flags."""
    np.testing.assert_allclose(a.mixture.weights, b.mixture.weights, rtol=rtol, atol=1e-12)
    for u, v in zip(jax.tree.leaves(a.mixture.params), jax.tree.leaves(b.mixture.params)):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)
    np.testing.assert_allclose(a.history, b.history, rtol=rtol)
    np.testing.assert_allclose(a.all_log_likelihoods, b.all_log_likelihoods, rtol=rtol)
    for field in ("n_iter", "converged", "all_n_iter", "all_converged", "n_collapsed", "all_n_collapsed"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@pytest.fixture(scope="module")
def blobs():
    """9 000 rows of three 3-D Gaussian clusters, shuffled, float64."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [0.0, 8.0, 0.0]])
    x = np.concatenate([rng.normal(size=(3000, 3)) * s + c for c, s in zip(centres, (1.0, 0.5, 2.0))])
    return x[rng.permutation(x.shape[0])]


@pytest.fixture(scope="module")
def start(blobs):
    """A rough warm start shared by the equality tests."""
    return mx.fit(blobs[:300], mx.Gaussian(), 3, key=jax.random.key(2), max_iter=2).mixture


@pytest.mark.slow
def test_equals_fit_from_the_same_key_when_the_sample_holds_all_rows():
    """Restarts, initialisation on the sample (= the data, in order) and EM over 6 batches reproduce mx.fit."""
    x = np.asarray(mx.datasets.load_old_faithful(), np.float64)
    a = mx.fit(x, mx.Gaussian(), 2, key=jax.random.key(1), n_init=3, tol=1e-6)
    b = mx.fit_stream(x, mx.Gaussian(), 2, key=jax.random.key(1), n_init=3, tol=1e-6, batch_size=50)
    _assert_same_fit(a, b)


def test_memmap_ten_times_the_batch_equals_fit(blobs, start, tmp_path):
    """A .npy file read in 20 batches, given as a path and as a read-only memmap, and a copy-on-write map."""
    path = tmp_path / "blobs.npy"
    np.save(path, blobs)
    expected = mx.fit(blobs, mx.Gaussian(), 3, key=None, init=start, tol=1e-8, max_iter=40)
    mapped = np.load(path, mmap_mode="r")
    writable = np.load(path, mmap_mode="c")
    writable[0, 0] = 1e3  # seen through the copy-on-write map only
    changed = blobs.copy()
    changed[0, 0] = 1e3
    for source, reference in ((str(path), expected), (mapped, expected), (writable, None)):
        got = mx.fit_stream(source, mx.Gaussian(), 3, key=None, init=start, tol=1e-8, max_iter=40, batch_size=450)
        if reference is None:
            reference = mx.fit(changed, mx.Gaussian(), 3, key=None, init=start, tol=1e-8, max_iter=40)
        _assert_same_fit(reference, got)
    assert blobs.shape[0] // 450 >= 10


def test_callable_with_uneven_weighted_batches_equals_weighted_fit(blobs, start):
    """Batches of different lengths with sample weights (some zero), from a generator function."""
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 4, size=blobs.shape[0]).astype(np.float64)
    edges = np.cumsum([0, 1000, 1700, 13, 2500, 1, 3786])
    assert edges[-1] == blobs.shape[0]

    def batches():
        for lo, hi in zip(edges[:-1], edges[1:]):
            yield blobs[lo:hi], weights[lo:hi]

    expected = mx.fit(blobs, mx.Gaussian("diag"), 3, key=None, init=_as(start, "diag"), sample_weight=weights, tol=1e-8)
    got = mx.fit_stream(batches, mx.Gaussian("diag"), 3, key=None, init=_as(start, "diag"), tol=1e-8)
    _assert_same_fit(expected, got)
    # The same weights beside an array, read block by block with its rows.
    beside = mx.fit_stream(
        blobs, mx.Gaussian("diag"), 3, key=None, init=_as(start, "diag"), tol=1e-8, sample_weight=weights, batch_size=2000
    )
    _assert_same_fit(expected, beside)


def _as(mixture, covariance):
    family = mx.Gaussian(covariance)
    cov = mixture.params.covariances
    cov = np.diagonal(cov, axis1=1, axis2=2) if covariance == "diag" else cov
    return mx.Mixture(mixture.weights, family.make_params(mixture.params.means, cov), family)


@pytest.mark.slow
def test_prior_hard_assignment_and_fixed_weights_equal_fit(blobs, start):
    prior = mx.GaussianPrior.default(blobs, 3, "full")
    for options in ({"prior": prior}, {"assignment": "hard", "update_weights": False, "prior": mx.DirichletPrior(2.0)}):
        expected = mx.fit(blobs, mx.Gaussian(), 3, key=None, init=start, **options)
        got = mx.fit_stream(blobs, mx.Gaussian(), 3, key=None, init=start, batch_size=2000, **options)
        _assert_same_fit(expected, got)


@pytest.mark.slow
def test_poisson_counts_from_a_list_of_batches():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.poisson(2.0, size=(400, 2)), rng.poisson(15.0, size=(600, 2))]).astype(np.float64)
    parts = [x[:300], x[300:310], x[310:]]
    a = mx.fit(x, mx.Poisson(), 2, key=jax.random.key(0), n_init=2)
    b = mx.fit_stream(parts, mx.Poisson(), 2, key=jax.random.key(0), n_init=2)
    _assert_same_fit(a, b)
    assert sorted(np.round(b.mixture.params.rates[:, 0]).tolist()) == [2.0, 15.0]


@pytest.mark.slow
def test_a_sample_smaller_than_the_data_still_recovers_the_clusters(blobs):
    """Initialisation from 500 sampled rows of 9 000; EM over the full data recovers the three centres."""
    r = mx.fit_stream(blobs, mx.Gaussian(), 3, key=jax.random.key(0), batch_size=1000, init_sample_size=500, n_init=2)
    means = r.mixture.params.means[np.argsort(r.mixture.params.means[:, 1] + r.mixture.params.means[:, 0])]
    np.testing.assert_allclose(means, [[0, 0, 0], [0, 8, 0], [5, 5, 5]], atol=0.15)
    full = mx.fit(blobs, mx.Gaussian(), 3, key=None, init=r.mixture, max_iter=1)
    np.testing.assert_allclose(full.history[0], r.log_likelihood, rtol=1e-9)


def test_callback_reports_every_iteration_of_every_restart():
    x = np.asarray(mx.datasets.load_old_faithful(), np.float64)
    reports = []
    r = mx.fit_stream(x, mx.Gaussian(), 2, key=jax.random.key(1), n_init=3, tol=1e-6, batch_size=50, callback=reports.append)
    assert len(reports) == int(np.sum(r.all_n_iter))
    best = int(np.argmax(r.all_log_likelihoods))
    mine = [p.log_likelihood for p in reports if p.restart == best]
    np.testing.assert_allclose(mine, r.history[: int(r.n_iter)])
    assert [p.iteration for p in reports if p.restart == best] == list(range(1, int(r.n_iter) + 1))


def test_reservoir_sample_is_uniform_and_exact_when_small():
    x = np.arange(40.0).reshape(20, 2)
    source = sources.as_source(x, mx.Gaussian(), batch_size=3)
    whole = sources.scan(source, 25, 0)
    np.testing.assert_array_equal(whole.sample, x)
    assert (whole.n_rows, whole.max_rows, whole.n_batches, whole.total_weight) == (20, 3, 7, 20.0)
    counts = np.zeros(20)
    trials = 4000
    for seed in range(trials):
        s = sources.scan(source, 5, seed).sample
        rows = (s[:, 0] / 2).astype(int)
        assert len(set(rows)) == 5 and np.all(s[:, 1] == s[:, 0] + 1)
        counts[rows] += 1
    # Each row is kept with probability 5/20: binomial(4000, 1/4) has sd 27.4; 5 sd allowed.
    assert np.all(np.abs(counts - trials / 4) < 5 * np.sqrt(trials * 0.25 * 0.75)), counts


def _resident_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")
def test_a_pass_over_a_file_does_not_hold_the_file(tmp_path):
    """Reading a 98 MiB file in 10 000-row batches: resident memory, sampled at every batch, stays flat."""
    path = tmp_path / "wide.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (200_000, 64)})
        for _ in range(20):
            np.ones((10_000, 64)).tofile(f)
    source = sources.as_source(str(path), mx.Gaussian(), batch_size=10_000)
    before = _resident_bytes()
    growth, total = 0, 0.0
    for batch in source.batches():
        total += float(batch.x[:, 0].sum())
        growth = max(growth, _resident_bytes() - before)
    assert total == 200_000.0
    # One batch is 4.9 MiB; reading through a memory map would leave the whole file resident.
    assert growth < 30 * 2**20, f"resident memory grew by {growth / 2**20:.0f} MiB over a 98 MiB file"


# -- refusals ---------------------------------------------------------------------------------------


def _bad_npy(tmp_path, name, array, **kwargs):
    path = tmp_path / name
    np.save(path, array, **kwargs)
    return str(path)


def test_bad_sources_are_refused_before_compiling(tmp_path, monkeypatch):
    from mixtures._src.fitting import streaming

    def fail(*args, **kwargs):
        raise AssertionError("compiled before refusing")

    for name in ("_initial", "_add_batch", "_step", "_final"):
        monkeypatch.setattr(streaming, name, fail)
    good = np.random.default_rng(0).normal(size=(50, 2))
    nan_in_third = [good[:10], good[10:20], np.where(np.arange(20)[:, None] == 7, np.nan, good[20:40]), good[40:]]
    truncated = _bad_npy(tmp_path, "short.npy", good)
    with open(truncated, "r+b") as f:
        f.truncate(200)
    cases = [
        (iter([good]), TypeError, r"`batches` must be re-iterable"),
        ((b for b in [good]), TypeError, r"re-iterable"),
        (nan_in_third, ValueError, r"`batches\[2\]` must contain only finite values in float64; received nan at row 7"),
        ([good[:10], good[10:, :1]], ValueError, r"`batches\[1\]` must have 2 features"),
        ([(good, -np.ones(50))], ValueError, r"`batches\[0\] sample_weight` must be finite and non-negative"),
        ([(good, np.ones(49))], ValueError, r"`batches\[0\] sample_weight` must have shape \(50,\)"),
        ([(good, np.zeros(50))], ValueError, r"at least one row of positive `sample_weight`"),
        (lambda: 3, TypeError, r"must return an iterator"),
        (_bad_npy(tmp_path, "f.npy", np.asfortranarray(good)), ValueError, r"Fortran"),
        (_bad_npy(tmp_path, "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True), ValueError, r"never unpickled"),
        (_bad_npy(tmp_path, "one_d.npy", good[:, 0]), ValueError, r"2-D"),
        (truncated, ValueError, r"truncated"),
        (str(tmp_path / "missing.npy"), ValueError, r"cannot read"),
        (good[:1], ValueError, r"`n_components` \(2\) must be at most the number of samples N \(1\)"),
        ("string data", ValueError, r"cannot read"),
        (np.array([["a", "b"]]), TypeError, r"`batches` must be an array of real numbers"),
    ]
    for source, error, match in cases:
        with pytest.raises(error, match=match):
            mx.fit_stream(source, mx.Gaussian(), 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"init_sample_size"):
        mx.fit_stream(good, mx.Gaussian(), 3, key=jax.random.key(0), init_sample_size=2)
    with pytest.raises(ValueError, match=r"`family` must have an M-step from summed statistics to be streamed; StudentT does not"):
        mx.fit_stream(good, mx.StudentT(), 2, key=jax.random.key(0))


def test_a_source_that_changes_between_passes_is_refused():
    good = np.random.default_rng(0).normal(size=(50, 2))
    passes = []

    def shrinking():
        passes.append(1)
        yield good[: 50 - len(passes)]

    with pytest.raises(ValueError, match=r"yielded 48 rows on a later pass but 49 on the first"):
        mx.fit_stream(shrinking, mx.Gaussian("diag"), 2, key=jax.random.key(0))

    def growing():
        passes.append(1)
        yield good[: 20 + len(passes)]

    passes.clear()
    with pytest.raises(ValueError, match=r"`batches` yielded a batch of 22 rows on a later pass, longer than .* \(21\)"):
        mx.fit_stream(growing, mx.Gaussian("diag"), 2, key=jax.random.key(0))

    def wider():
        passes.append(1)
        yield good if len(passes) == 1 else np.hstack([good, good])

    passes.clear()
    with pytest.raises(ValueError, match=r"`batches\[0\]` must have 2 features"):
        mx.fit_stream(wider, mx.Gaussian("diag"), 2, key=jax.random.key(0))


def test_array_blocks_are_named_by_their_rows_and_batches_share_the_first_dtype():
    x = np.random.default_rng(0).normal(size=(40, 2))
    x[25, 1] = np.inf
    with pytest.raises(ValueError, match=r"`batches\[20:30\]` must contain only finite values in float64; received inf at row 5"):
        list(sources.as_source(x, mx.Gaussian(), batch_size=10).batches())
    mixed = sources.as_source([x[:5].astype(np.float32), (x[5:10], np.ones(5))], mx.Gaussian())
    assert [(b.x.dtype, None if b.weights is None else b.weights.dtype) for b in mixed.batches()] == [
        (np.float32, None), (np.float32, np.float32)
    ]
    with pytest.raises(ValueError, match=r"`sample_weight` goes with an array, memmap or .npy `batches`"):
        sources.as_source([x[:5]], mx.Gaussian(), sample_weight=np.ones(5))
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(40,\)"):
        sources.as_source(x, mx.Gaussian(), sample_weight=np.ones(39))
