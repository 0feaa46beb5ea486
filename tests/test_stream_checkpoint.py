"""Checkpoints of fits over batches: mx.fit_stream and fit_online killed mid-way resume to the
uninterrupted result, refuse another fit's checkpoint, return a finished one at once, and Ctrl-C
says how far they got."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.fitting import online, streaming
from mixtures.online import fit_online, polynomial_decay
from tests.helpers import recording_compilations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The data of every fit here, made the same way in the test and in its subprocesses: 3 000 rows,
# read as 6 batches of 500.
DATA = """
import numpy as np
rng = np.random.default_rng(7)
centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.5, 0.0], [0.0, 3.0, 1.0], [2.0, 2.0, 3.0]])
x = centres[rng.integers(0, 4, 3000)] + rng.normal(size=(3000, 3))
"""
STREAM = dict(n_init=2, max_iter=30, tol=0.0, batch_size=500)
ONLINE = dict(n_epochs=3, init_sample_size=600, step_size=0.3)


def _data():
    scope = {}
    exec(DATA, scope)
    return scope["x"]


def _batches(x):
    """A generator function over x's 6 batches of 500 rows (a source fit_online reads once per pass)."""
    return lambda: (x[i : i + 500] for i in range(0, x.shape[0], 500))


def _run_to_death(code):
    """Runs ``code`` in a Python process with x64 on, as in the tests, and expects it to be SIGKILLed."""
    header = 'import os, signal, jax\njax.config.update("jax_enable_x64", True)\nimport mixtures as mx\n'
    child = subprocess.run(
        [sys.executable, "-c", header + DATA + textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


def _same(a, b, fields):
    for name in fields:
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for leaf_a, leaf_b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


def _same_fit(a, b):
    _same(a, b, ("log_likelihood", "history", "n_iter", "converged", "all_log_likelihoods", "n_collapsed"))


def _same_online(a, b):
    _same(a, b, ("log_likelihood", "history", "n_steps"))


def _refuse(*names):
    """Replaces module functions by ones that fail the test if called; returns a function restoring them."""
    originals = [(module, name, getattr(module, name)) for module, name in names]

    def not_run(*args, **kwargs):
        raise AssertionError("an update ran")

    for module, name, _ in originals:
        setattr(module, name, not_run)
    return lambda: [setattr(module, name, f) for module, name, f in originals]


@pytest.fixture(scope="module")
def stream_uninterrupted():
    return mx.fit_stream(_data(), mx.Gaussian(), 4, key=jax.random.key(3), **STREAM)


@pytest.fixture(scope="module")
def online_uninterrupted():
    return fit_online(_batches(_data()), mx.Gaussian(), 4, key=jax.random.key(3), **ONLINE)


def test_fit_stream_killed_mid_way_resumes_from_its_checkpoint_to_the_uninterrupted_result(
    tmp_path, stream_uninterrupted
):
    path = tmp_path / "stream.ckpt"
    _run_to_death(
        f"""
        def die(p):
            if p.iteration == 23:
                os.kill(os.getpid(), signal.SIGKILL)

        mx.fit_stream(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint={str(path)!r}, checkpoint_every=5,
                      callback=die, **{STREAM!r})
        """
    )
    with np.load(path) as saved:
        assert int(saved["first"]) == 20 and saved["history"].shape == (2, 20)  # the last checkpoint before 23
    resumed = mx.fit_stream(
        _data(), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, checkpoint_every=5, **STREAM
    )
    _same_fit(resumed, stream_uninterrupted)
    assert resumed.history.shape == (30,) and np.all(np.isfinite(resumed.history))

    # The finished checkpoint holds the final log-likelihood too: no pass over the batches but the
    # validating scan, and the file is not rewritten.
    saved = path.read_bytes()
    restore = _refuse((streaming, "_add_batch"), (streaming, "_step"))
    try:
        again = mx.fit_stream(_data(), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, **STREAM)
    finally:
        restore()
    _same_fit(again, stream_uninterrupted)
    assert path.read_bytes() == saved


def test_fit_online_killed_in_its_second_epoch_resumes_to_the_uninterrupted_result(tmp_path, online_uninterrupted):
    path = tmp_path / "online.ckpt"
    # Passes: the validating scan, then one per epoch; the kill comes as the second epoch's batch 3 is
    # read, after 6 + 3 = 9 updates, the last checkpoint (every 4) holding 8.
    _run_to_death(
        f"""
        from mixtures.online import fit_online
        passes = 0

        def batches():
            global passes
            passes += 1
            for i in range(6):
                if passes == 3 and i == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield x[500 * i : 500 * (i + 1)]

        fit_online(batches, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint={str(path)!r}, checkpoint_every=4,
                   **{ONLINE!r})
        """
    )
    with np.load(path) as saved:
        assert int(saved["first"]) == 8 and saved["history"].shape == (8,)
    fits = []
    original = fitting.fit

    def counting(*args, **kwargs):
        fits.append(1)
        return original(*args, **kwargs)

    fitting.fit = counting
    try:
        resumed = fit_online(
            _batches(_data()), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, checkpoint_every=4, **ONLINE
        )
    finally:
        fitting.fit = original
    assert not fits  # the initial fit on the sample is in the checkpoint
    _same_online(resumed, online_uninterrupted)
    assert resumed.history.shape == (18,) and resumed.n_steps == 18

    saved = path.read_bytes()
    restore = _refuse((online, "_update"), (fitting, "fit"))
    try:
        again = fit_online(_batches(_data()), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, **ONLINE)
    finally:
        restore()
    _same_online(again, online_uninterrupted)
    assert path.read_bytes() == saved


def test_a_checkpoint_of_another_fit_or_another_file_is_refused_and_left_alone(tmp_path):
    x = _data()
    stream_path, online_path = tmp_path / "stream.ckpt", tmp_path / "online.ckpt"
    stream = dict(STREAM, max_iter=3)
    mx.fit_stream(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=stream_path, **stream)
    fit_online(x, mx.Gaussian(), 4, key=jax.random.key(3), batch_size=500, checkpoint=online_path, **ONLINE)
    saved = stream_path.read_bytes(), online_path.read_bytes()
    another = r"`checkpoint`: .* is the checkpoint of another fit"
    for change in (
        dict(max_iter=4), dict(tol=1e-3), dict(key=jax.random.key(4)), dict(batch_size=400), dict(n_init=1),
        dict(init_sample_size=1000),
    ):
        with pytest.raises(ValueError, match=another):
            mx.fit_stream(x, mx.Gaussian(), 4, checkpoint=stream_path, **(dict(stream, key=jax.random.key(3)) | change))
    with pytest.raises(ValueError, match=another):
        mx.fit_stream(x + 1e-9, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=stream_path, **stream)
    weights = np.ones(x.shape[0])
    weights[0] = 2.0
    with pytest.raises(ValueError, match=another):
        mx.fit_stream(
            x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=stream_path, sample_weight=weights, **stream
        )
    online_args = dict(ONLINE, batch_size=500, key=jax.random.key(3))
    for change in (
        dict(n_epochs=2), dict(step_size=0.31), dict(step_size=polynomial_decay(0.7)),
        dict(averaging_start=3), dict(key=jax.random.key(4)), dict(batch_size=600), dict(init_max_iter=50),
    ):
        with pytest.raises(ValueError, match=another):
            fit_online(x, mx.Gaussian(), 4, checkpoint=online_path, **(online_args | change))
    with pytest.raises(ValueError, match=another):
        fit_online(x[::-1], mx.Gaussian(), 4, checkpoint=online_path, **online_args)
    with pytest.raises(ValueError, match=another):  # one function's checkpoint given to the other
        fit_online(x, mx.Gaussian(), 4, checkpoint=stream_path, **online_args)
    with pytest.raises(ValueError, match=another):
        mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=stream_path, max_iter=3, n_init=2, tol=0.0)
    assert (stream_path.read_bytes(), online_path.read_bytes()) == saved

    other = tmp_path / "notes.txt"
    other.write_text("my notes")
    with pytest.raises(ValueError, match=r"is not a checkpoint written by mixtures; it is left as it is"):
        mx.fit_stream(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=other, **stream)
    with pytest.raises(ValueError, match=r"is not a checkpoint written by mixtures; it is left as it is"):
        fit_online(x, mx.Gaussian(), 4, checkpoint=other, **online_args)
    assert other.read_text() == "my notes"


def test_checkpoint_arguments_are_checked_before_the_data_is_read(tmp_path):
    def unread():
        raise AssertionError("the source was read")

    with recording_compilations() as compiled:
        for call in (mx.fit_stream, fit_online):
            with pytest.raises(ValueError, match=r"`checkpoint_every` must be a positive integer"):
                call(unread, mx.Gaussian(), 2, key=jax.random.key(0), checkpoint="fit.ckpt", checkpoint_every=0)
            with pytest.raises(TypeError, match=r"`checkpoint` must be a file path"):
                call(unread, mx.Gaussian(), 2, key=jax.random.key(0), checkpoint=3)
            with pytest.raises(IsADirectoryError):
                call(unread, mx.Gaussian(), 2, key=jax.random.key(0), checkpoint=tmp_path)
    assert compiled == []


def test_fit_stream_history_grows_with_the_iterations_run(stream_uninterrupted):
    x = _data()
    result = mx.fit_stream(x, mx.Gaussian(), 4, key=jax.random.key(3), n_init=3, batch_size=500, max_iter=2**31 - 1)
    assert bool(result.converged) and result.history.shape == (int(result.n_iter),)
    assert np.all(np.isfinite(result.history))
    assert stream_uninterrupted.history.shape == (30,)


def test_ctrl_c_notes_how_far_the_fits_got(tmp_path):
    x = _data()

    def interrupt(p):
        if p.iteration == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as raised:
        mx.fit_stream(x, mx.Gaussian(), 4, key=jax.random.key(3), callback=interrupt, checkpoint=tmp_path / "s.ckpt",
                      checkpoint_every=5, **STREAM)
    assert raised.value.__notes__ == [
        f"mx.fit_stream was interrupted after 6 of at most 30 EM iterations. The checkpoint "
        f"{str(tmp_path / 's.ckpt')!r} holds iteration 5."
    ]
    passes = []

    def batches():
        passes.append(1)
        for i in range(6):
            if len(passes) == 2 and i == 2:
                raise KeyboardInterrupt
            yield x[500 * i : 500 * (i + 1)]

    with pytest.raises(KeyboardInterrupt) as raised:
        fit_online(batches, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=tmp_path / "o.ckpt", **ONLINE)
    assert raised.value.__notes__ == [
        f"mixtures.online.fit_online was interrupted after 2 of 18 batches (3 epochs of 6). The checkpoint "
        f"{str(tmp_path / 'o.ckpt')!r} holds no batch yet (one is saved every 30 s)."
    ]
