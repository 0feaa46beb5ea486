"""Long fits: Ctrl-C stops them promptly, a callback's exception comes back as it was raised,
memory does not grow with max_iter, and a checkpointed fit killed mid-way resumes to the
uninterrupted result."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures._src.fitting import fit as fitting
from mixtures._src.fitting import segments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The data of every fit here, made the same way in the test and in its subprocesses.
DATA = """
import numpy as np
rng = np.random.default_rng(7)
centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.5, 0.0], [0.0, 3.0, 1.0], [2.0, 2.0, 3.0]])
x = centres[rng.integers(0, 4, 3000)] + rng.normal(size=(3000, 3))
"""
FIT = dict(n_init=2, max_iter=60, tol=0.0)


def _data():
    scope = {}
    exec(DATA, scope)
    return scope["x"]


# Children start with Ctrl-C as a terminal gives it: deliverable, at Python's default handler. A
# child inherits its parent's blocked and ignored signals, and the test worker's need not be a
# shell's (one CI run had the children of one worker ignore SIGINT altogether).
AS_FROM_A_SHELL = (
    "import signal\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
)


def _sigint_state() -> str:
    """This process's SIGINT handler and whether it is blocked: what a child inherits."""
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return f"(the test process's SIGINT: handler {signal.getsignal(signal.SIGINT)!r}, blocked {blocked})"


def _run_python(code, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_SHELL + textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **kwargs,
    )


def _same_fit(a, b):
    for name in ("log_likelihood", "history", "n_iter", "converged", "all_log_likelihoods", "n_collapsed"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    for leaf_a, leaf_b in zip(jax.tree.leaves(a.mixture), jax.tree.leaves(b.mixture)):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


@pytest.fixture(scope="module")
def uninterrupted():
    return mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), **FIT)


def test_a_fit_killed_mid_way_resumes_from_its_checkpoint_to_the_uninterrupted_result(tmp_path, uninterrupted):
    path = tmp_path / "fit.ckpt"
    child = _run_python(
        f"""
        import os, signal, jax
        jax.config.update("jax_enable_x64", True)
        import mixtures as mx
        {textwrap.indent(textwrap.dedent(DATA), " " * 8).strip()}

        def die(p):
            if p.iteration == 23:
                os.kill(os.getpid(), signal.SIGKILL)

        mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint={str(path)!r}, checkpoint_every=5,
               callback=die, **{FIT!r})
        """
    )
    _, err = child.communicate(timeout=600)
    assert child.returncode == -signal.SIGKILL, err
    with np.load(path) as saved:
        assert int(saved["first"]) == 20 and saved["history"].shape == (2, 20)  # the last checkpoint before 23
    resumed = mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, checkpoint_every=5, **FIT)
    _same_fit(resumed, uninterrupted)
    assert resumed.history.shape == (60,) and np.all(np.isfinite(resumed.history))

    # The finished checkpoint returns the same result without running an iteration.
    def not_run(*args, **kwargs):
        raise AssertionError("an EM segment ran")

    saved = path.read_bytes()
    again = mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, checkpoint_every=5, **FIT)
    _same_fit(again, uninterrupted)
    assert path.read_bytes() == saved
    fitting._advance, original = not_run, fitting._advance
    try:
        _same_fit(mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, **FIT), uninterrupted)
    finally:
        fitting._advance = original


def test_a_checkpoint_of_another_fit_or_another_file_is_refused_and_left_alone(tmp_path):
    x = _data()
    path = tmp_path / "fit.ckpt"
    mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, max_iter=3)
    before = path.read_bytes()
    for change in (dict(max_iter=4), dict(tol=1e-3, max_iter=3), dict(key=jax.random.key(4), max_iter=3)):
        args = dict(key=jax.random.key(3)) | change
        with pytest.raises(ValueError, match=r"`checkpoint`: .* is the checkpoint of another fit"):
            mx.fit(x, mx.Gaussian(), 4, checkpoint=path, **args)
    with pytest.raises(ValueError, match=r"the checkpoint of another fit"):
        mx.fit(x + 1e-9, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, max_iter=3)
    assert path.read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("my notes")
    array = tmp_path / "array.npy"
    np.save(array, x)
    archive = tmp_path / "arrays.npz"
    np.savez(archive, x=x)
    for path in (other, array, archive):
        before = path.read_bytes()
        with pytest.raises(ValueError, match=r"is not a checkpoint written by mixtures; it is left as it is") as e:
            mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path)
        assert "pickle" not in str(e.value) and path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match=r"`checkpoint`: its directory does not exist"):
        mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=tmp_path / "missing" / "fit.ckpt")
    link = tmp_path / "link"
    link.symlink_to(other)
    with pytest.raises(ValueError, match=r"symbolic link"):
        mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=link)
    with pytest.raises(ValueError, match=r"`checkpoint_every` must be a positive integer"):
        mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), checkpoint=path, checkpoint_every=0)


def test_segment_lengths_never_change_the_result(monkeypatch, uninterrupted):
    monkeypatch.setattr(segments, "SECONDS", 0.0)  # one iteration per compiled call
    calls = []
    original = fitting._advance

    def counting(*args, **kwargs):
        calls.append(args[6] - args[5])
        return original(*args, **kwargs)

    monkeypatch.setattr(fitting, "_advance", counting)
    _same_fit(mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), **FIT), uninterrupted)
    assert calls == [1] * 60


def test_a_callbacks_exception_is_raised_as_it_was_and_stops_the_fit():
    class Stop(Exception):
        pass

    seen = []

    def callback(p):
        seen.append(p.iteration)
        if p.iteration == 3:
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        mx.fit(_data(), mx.Gaussian(), 4, key=jax.random.key(3), max_iter=10**6, tol=0.0, callback=callback)
    assert max(seen) == 3  # no call after the one that raised


def test_history_memory_does_not_grow_with_max_iter():
    x = _data()
    result = mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(3), max_iter=2**31 - 1, n_init=3)
    assert bool(result.converged) and result.history.shape == (int(result.n_iter),)
    table = mx.select(x, mx.Gaussian(), [2, 3], key=jax.random.key(3), max_iter=2**31 - 1).table
    assert all(row["converged"] for row in table)


def test_ctrl_c_stops_a_python_fit_with_a_callback_within_seconds():
    child = _run_python(
        f"""
        import sys, time, jax
        import mixtures as mx
        {textwrap.indent(textwrap.dedent(DATA), " " * 8).strip()}

        def callback(p):
            if p.iteration == 3 and p.restart == 0:
                print("iterating", flush=True)
            time.sleep(0.001)  # where the signal often lands when JAX runs callbacks on the main thread

        try:
            mx.fit(x, mx.Gaussian(), 4, key=jax.random.key(0), max_iter=2**31 - 1, tol=0.0, callback=callback)
        except KeyboardInterrupt as e:
            print(" ".join(e.__notes__), flush=True)
            sys.exit(3)
        """
    )
    assert child.stdout.readline() == "iterating\n"
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert child.returncode == 3, err  # KeyboardInterrupt itself, not JAX's "CpuCallback error"
    assert "mx.fit was interrupted after" in out and "of at most 2147483647 EM iterations" in out
    assert waited < 10, waited  # a segment takes about 0.25 s; it used to run to max_iter


def test_ctrl_c_stops_the_command_line_and_writes_no_model_and_the_same_command_resumes(tmp_path):
    x = _data()
    data = tmp_path / "data.csv"
    np.savetxt(data, x, delimiter=",")
    model, checkpoint = tmp_path / "model.mix", tmp_path / "fit.ckpt"
    cli = AS_FROM_A_SHELL + "import runpy\nrunpy.run_module('mixtures.cli', run_name='__main__', alter_sys=True)\n"
    fit = [sys.executable, "-c", cli, "fit", str(data), "-k", "4", "--max-iter", "3000", "--tol", "0"]
    command = fit + ["--progress", "--out", str(model), "--checkpoint", str(checkpoint), "--checkpoint-every", "5"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():  # iterating: the first checkpoint is written
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert child.returncode == 130, f"{err} {_sigint_state()}"
    assert "mixtures: interrupted; mx.fit was interrupted after" in err and "The checkpoint" in err
    assert not model.exists()
    assert waited < 10, waited
    # The same command resumes, and saves the model an uninterrupted run saves, byte for byte.
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from the checkpoint {checkpoint}" in resumed.stderr
    whole = tmp_path / "whole.mix"
    once = subprocess.run(fit + ["--out", str(whole)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert once.returncode == 0, once.stderr
    assert model.read_bytes() == whole.read_bytes()
