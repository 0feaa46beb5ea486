"""Every case of the bad-input matrix (tests/bad_inputs.py), through every front end that can express it.

Each must raise its ``ValueError``/``TypeError`` with a message naming the
argument and what was expected, before anything is compiled: the front
end's compiled entry points are replaced by functions that fail the test,
and no XLA compilation may start while the call runs.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures import cli
from mixtures._src.core import mixture
from mixtures._src.fitting import fit as fitting, online, selection, streaming
from tests.bad_inputs import CASES, GOOD, Lazy, build, resolve, unbuilt
from tests.helpers import recording_compilations



class Front(NamedTuple):
    """A front end: which case arguments it can express, how to call it, what it compiles.

    A front end with its own conventions gives ``names``: for the argument a
    case is about (the first one its message names in backticks, e.g. ``x``
    or ``init``), a regular expression for how this front end's messages
    name it (``X``, ``--components``). Its errors must then be
    ``errors`` and name that argument, except for the case ids in ``loose``
    (messages the front end takes from elsewhere, with only the type and the
    absence of compilation checked). ``accepted`` lists the cases it accepts
    by design.
    """

    name: str
    accepts: Callable[[dict], bool]
    call: Callable[[dict], object]
    compiled: tuple  # (module, attribute) pairs of compiled entry points
    names: dict | None = None
    errors: tuple = (ValueError, TypeError)
    loose: frozenset = frozenset()
    accepted: frozenset = frozenset()


def _names(*allowed):
    allowed = set(allowed)
    return lambda args: set(args) <= allowed


FIT_ARGS = (
    "x", "family", "n_components", "key", "init", "n_init", "max_iter", "tol", "sample_weight",
    "labels", "assignment", "update_weights", "chunk_size", "prior", "callback", "mesh",
)


def _fit(args):
    return mx.fit(**args)


def _select_accepts(args):
    names = {
        "x", "family", "n_components", "key", "init", "n_init", "max_iter", "tol", "sample_weight", "chunk_size",
        "criterion", "models",
    }
    return set(args) <= names and not isinstance(args.get("init"), Lazy)


def _select(args):
    args = dict(args)
    args["n_components"] = [args["n_components"]]
    return mx.select(**args)


_SCORED = mx.Mixture(
    np.array([0.5, 0.5]), mx.Gaussian("full").make_params(np.array([[0.0, 0.0], [1.0, 1.0]]), np.stack([np.eye(2)] * 2)), mx.Gaussian("full")
)


def _score(args):
    return _SCORED.score(args["x"], sample_weight=args.get("sample_weight"))


_FIT_ENTRY_POINTS = (
    ("fitting", "_start_restarts"), ("fitting", "_start_from"), ("fitting", "_advance"), ("fitting", "_finish"),
)
_SELECT_ENTRY_POINTS = (
    ("selection", "_start_candidates"), ("selection", "_advance_candidates"), ("selection", "_finish_candidates"),
)
_MESH_ENTRY_POINTS = (
    ("fitting", "_start_restarts_on_mesh"), ("fitting", "_advance_on_mesh"), ("fitting", "_finish_on_mesh"),
)

FRONTS = [
    Front("fit", _names(*FIT_ARGS), _fit, _FIT_ENTRY_POINTS + _MESH_ENTRY_POINTS),
    Front("select", _select_accepts, _select, _SELECT_ENTRY_POINTS),
    Front("score", _names("x", "sample_weight"), _score, tuple(("mixture", f) for f in ("_score", "_criteria", "rows_log_prob"))),
]


# -- mx.fit_stream: the data as a source of batches ---------------------------------------------------

STREAM_ARGS = tuple(a for a in FIT_ARGS if a not in ("labels", "mesh"))


def _stream(args):
    args = dict(args)
    x = args.pop("x")
    weights = args.pop("sample_weight", None)
    return mx.fit_stream(x if weights is None else [(x, weights)], **args)


FRONTS.append(Front(
    "stream",
    _names(*STREAM_ARGS),
    _stream,
    tuple(("streaming", f) for f in ("_initial", "_add_batch", "_step", "_final")),
    names={
        **{a: f"`{a}" for a in STREAM_ARGS if a not in ("x", "sample_weight")},
        # the data is `batches`, a batch `batches[i]`; the family's domain check names `x`
        "x": r"`batches|`x`", "sample_weight": r"`batches\[0\] sample_weight`|`sample_weight`",
        "covariance": r"`covariance`", "reg_covar": r"`reg_covar`", "means": r"`means`", "covariances": r"`covariances`",
    },
    # von Mises–Fisher's check of D speaks of "the data"; a gradient family is refused as a
    # family before its init method is looked at
    loose=frozenset({"vmf_one_column", "init_random_gradient_family"}),
))


# -- scikit-learn's estimator: mixtures.sklearn.MixtureModel ---------------------------------------

try:
    from mixtures.sklearn import MixtureModel
except ImportError:  # scikit-learn missing
    MixtureModel = None


def _estimator(args):
    init = args.get("init", "kmeans++")
    warm = init if isinstance(init, mx.Mixture) else None
    model = MixtureModel(
        args["family"], n_components=args["n_components"], tol=args.get("tol", 1e-3), max_iter=args.get("max_iter", 100),
        n_init=args.get("n_init", 1), init_params="kmeans++" if warm is not None else init, mixture_init=warm, random_state=0,
    )
    return model.fit(args["x"], sample_weight=args.get("sample_weight"))


if MixtureModel is not None:
    FRONTS.append(Front(
        "sklearn",
        _names("x", "family", "n_components", "sample_weight", "max_iter", "tol", "n_init", "init"),
        _estimator,
        _FIT_ENTRY_POINTS,
        names={
            # X itself, or the family's domain check on it (which names `x`)
            "x": r"\bX\b|`x`",
            # its own init_params and mixture_init, or mx.fit's messages about the start it passes on
            "init": r"`init_params`|`mixture_init|`init\b",
            "n_components": r"`n_components`", "sample_weight": r"`sample_weight`", "family": r"`family`",
            "tol": r"`tol`", "max_iter": r"`max_iter`", "n_init": r"`n_init`",
            # raised by the family's constructor or make_params, before the estimator is called
            "covariance": r"`covariance`", "reg_covar": r"`reg_covar`", "means": r"`means`", "covariances": r"`covariances`",
        },
        # scikit-learn's validate_data messages (its estimator checks expect them), and von
        # Mises–Fisher's check of D, which speaks of "the data"
        loose=frozenset({"empty", "no_columns", "one_d", "three_d", "scalar", "ragged", "strings", "complex", "vmf_one_column"}),
        # scikit-learn converts boolean X, allows max_iter=0 (initialise only); mixture_init means one restart
        accepted=frozenset({"bool", "max_iter_zero", "warm_n_init"}),
    ))


# -- the command line: mixtures fit DATA --components K ... -----------------------------------------


def _cli_family(family):
    """The command line's options for ``family``, or None if it cannot express it."""
    if isinstance(family, mx.Gaussian) and family.reg_covar == 1e-6 and family.covariance != "identity":
        return ["--family", "gaussian", "--covariance", family.covariance]
    if isinstance(family, mx.Categorical) and family == mx.Categorical(family.n_categories):
        return ["--family", "categorical", "--categories", ",".join(map(str, family.n_categories))]
    for cls in (mx.Poisson, mx.Bernoulli, mx.Exponential, mx.Gamma):
        if type(family) is cls and family == cls():
            return ["--family", cls.__name__.lower()]
    return None


def _cli_accepts(args):
    if not set(args) <= {"x", "family", "n_components", "max_iter", "tol", "n_init"} or isinstance(args.get("family"), Lazy):
        return False
    x = args.get("x", GOOD)
    family = args.get("family", mx.Gaussian("full"))
    return isinstance(x, np.ndarray) and x.dtype != object and isinstance(family, mx.Family) and _cli_family(family) is not None


def _cli(args):
    with tempfile.TemporaryDirectory(prefix="bad_input_cli_") as folder:
        path = f"{folder}/data.npy"
        np.save(path, args["x"])
        argv = [
            "fit", path, "--components", str(args["n_components"]), "--restarts", str(args.get("n_init", 1)),
            "--max-iter", str(args.get("max_iter", 100)), "--tol", str(args.get("tol", 1e-3)),
            "--no-progress", "--debug", *_cli_family(args["family"]),
        ]
        return cli.main(argv)


if hasattr(cli, "CommandError"):
    FRONTS.append(Front(
        "cli",
        _cli_accepts,
        _cli,
        _FIT_ENTRY_POINTS,
        names={
            "x": r"data\.npy", "n_components": r"--components", "n_init": r"--restarts", "max_iter": r"--max-iter",
            "tol": r"--tol", "family": r"--family|--categories",
        },
        errors=(cli.CommandError, ValueError, TypeError),
        loose=frozenset({"categorical_columns"}),  # named by --categories, the option that disagrees with the data
        # a 1-D file is one column; every option arrives as a string
        accepted=frozenset({"one_d", "tol_string"}),
    ))


def _subject(case) -> str:
    """The argument a case is about: the first name its expected message puts in backticks."""
    found = re.search(r"`([a-z_]+)", case.match)
    return found.group(1) if found else next(iter(case.args))


PAIRS = [
    (front, case)
    for front in FRONTS
    for case in CASES
    if front.accepts(case.args) and case.id not in front.accepted
]


_MODULES = {"fitting": fitting, "mixture": mixture, "online": online, "selection": selection, "streaming": streaming}


def _must_not_run(*args, **kwargs):
    raise AssertionError("a compiled entry point ran: the input was not rejected on the host")


@pytest.fixture
def no_compilation(monkeypatch):
    """Counts XLA compilations; the test asserts there were none."""
    with recording_compilations() as events:
        yield events


@pytest.mark.parametrize("front, case", PAIRS, ids=[f"{f.name}-{c.id}" for f, c in PAIRS])
def test_rejected_on_the_host_with_a_named_argument(front, case, monkeypatch, no_compilation):
    for module, attribute in front.compiled:
        monkeypatch.setattr(_MODULES[module], attribute, _must_not_run)
    plain = unbuilt(case.args)  # the harness's own arrays and key: what they compile is not counted
    no_compilation.clear()
    with pytest.raises(case.error if front.names is None else front.errors) as info:
        args = build(plain)  # a Lazy argument (a library constructor) may be what raises: counted
        no_compilation.clear()  # it did not: what building compiled (a key split) was the harness's
        front.call(args)
    message = str(info.value)
    if front.names is None:
        assert re.search(case.match, message), f"message {message!r} does not match {case.match!r}"
    elif case.id not in front.loose:
        pattern = front.names[_subject(case)]
        assert re.search(pattern, message), f"message {message!r} does not name {_subject(case)!r} as {pattern!r}"
    assert not no_compilation, f"{len(no_compilation)} XLA compilation(s) ran before the error"


def test_the_compilation_listener_sees_a_compilation(no_compilation):
    """Guards the check above: a fresh jitted function must be seen compiling."""
    jax.jit(lambda v: v * 3.0 + 1.0)(np.arange(3.0)).block_until_ready()
    assert no_compilation


def test_every_case_runs_somewhere_and_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    covered = {c.id for _, c in PAIRS}
    assert covered == set(ids), set(ids) - covered
    for front in FRONTS:
        if front.names is not None:
            missing = {_subject(c) for f, c in PAIRS if f is front and c.id not in front.loose} - set(front.names)
            assert not missing, (front.name, missing)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("front", [f for f in FRONTS if f.accepted], ids=lambda f: f.name)
def test_what_a_front_end_accepts_by_design_fits(front):
    """The cases a front end lists as accepted really are accepted (so the list cannot hide a crash)."""
    for case in CASES:
        if case.id in front.accepted:
            front.call(resolve({**case.args, **({"max_iter": 1} if "max_iter" not in case.args else {})}))


def test_base_arguments_fit_through_every_front_end():
    """The table's base arguments are valid, so each case fails only for its own argument."""
    fit = _fit(resolve({"max_iter": 2}))
    assert np.isfinite(float(fit.log_likelihood))
    assert np.isfinite(float(_score(resolve({}))))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float16])
def test_integer_and_half_precision_data_are_converted_to_the_default_float(dtype):
    """Accepted, not rejected (documented in ``mx.fit``): computed in JAX's default float dtype."""
    x = np.round(GOOD * 3).astype(dtype) if dtype != np.uint8 else (GOOD > 0).astype(dtype) * 7
    m = _SCORED
    expected = np.asarray(m.log_prob(x.astype(np.float64)))
    np.testing.assert_allclose(np.asarray(m.log_prob(x)), expected, rtol=1e-12)
    assert m.log_prob(x).dtype == jax.numpy.zeros(()).dtype
