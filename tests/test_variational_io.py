"""mx.save / mx.load of a VariationalMixture: exact round trips, Mixture files unchanged, hostile files refused."""

from __future__ import annotations

import copy
import math
import os
import re

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mixtures as mx  # noqa: E402
from mixtures import io as mio  # noqa: E402
from mixtures._src.core.variational import StickBreaking  # noqa: E402
from mixtures.io import ModelFileError, load, save  # noqa: E402
from mixtures.priors import DirichletProcessPrior  # noqa: E402
from tests.test_io import _mutations, _pack, _set, _unpack, edited_array, load_in_worker  # noqa: E402

NAME = "posterior.mixture"


# -- three fits (module-scoped: compilation dominates), every other posterior derived from them --------


@pytest.fixture(scope="module")
def faithful():
    return mx.datasets.load_old_faithful()


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    rates = np.where(rng.random(60)[:, None] < 0.5, [1.0, 2.0], [6.0, 9.0])
    codes = rng.integers(0, 3, size=(60, 1))
    return np.concatenate([rng.poisson(rates), codes], axis=1).astype(np.float64)  # 2 count columns, 1 category


@pytest.fixture(scope="module")
def gaussian_full(faithful):
    return mx.fit_variational(faithful, mx.Gaussian("full"), 3, key=jax.random.key(0)).posterior


@pytest.fixture(scope="module")
def poisson(counts):
    prior = mx.Prior(weights=mx.DirichletPrior(1.0))
    return mx.fit_variational(counts[:, :2], mx.Poisson(), 2, key=jax.random.key(0), prior=prior).posterior


@pytest.fixture(scope="module")
def independent(counts):
    family = mx.Independent(((mx.Poisson(), (0, 1)), (mx.Categorical((3,)), (2,))))
    return mx.fit_variational(counts, family, 2, key=jax.random.key(0)).posterior


def _gaussian(post: mx.VariationalMixture, covariance: str) -> mx.VariationalMixture:
    """A valid posterior of another covariance type from the "full" one's numbers."""
    c = post.components
    scale = np.asarray(c.scale)
    dof = np.asarray(c.dof)
    if covariance == "diag":
        scale = np.diagonal(scale, axis1=-2, axis2=-1)
    elif covariance in ("spherical", "identity"):
        scale = np.trace(scale, axis1=-2, axis2=-1)
    elif covariance == "tied":  # one Wishart for all components
        scale = np.broadcast_to(scale.sum(axis=0), scale.shape)
        dof = np.broadcast_to(dof.sum(), dof.shape)
    components = mx.GaussianPrior(c.mean, c.shrinkage, jnp.asarray(dof), jnp.asarray(scale))
    return mx.VariationalMixture(post.weights, components, mx.Gaussian(covariance))


def _variant(post: mx.VariationalMixture, dtype, weights: str) -> mx.VariationalMixture:
    """``post`` in ``dtype``, with stick-breaking or Dirichlet weights."""
    w = post.weights
    if weights == "dirichlet" and isinstance(w, StickBreaking):
        w = mx.DirichletPrior(w.a)
    elif weights == "stick-breaking" and isinstance(w, mx.DirichletPrior):
        w = StickBreaking(w.concentration, jnp.full_like(w.concentration, 0.5))
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return mx.VariationalMixture(jax.tree.map(cast, w), jax.tree.map(cast, post.components), post.family)


def _posterior(request, name: str) -> tuple[mx.VariationalMixture, np.ndarray]:
    """(posterior, data) of a case name: "gaussian-<covariance>", "poisson", "categorical" or "independent"."""
    if name.startswith("gaussian-"):
        return _gaussian(request.getfixturevalue("gaussian_full"), name.split("-", 1)[1]), request.getfixturevalue(
            "faithful"
        )
    data = request.getfixturevalue("counts")
    if name == "poisson":
        return request.getfixturevalue("poisson"), data[:, :2]
    post = request.getfixturevalue("independent")
    if name == "categorical":
        family = post.family.components[1][0]
        return mx.VariationalMixture(post.weights, post.components[1], family), data[:, 2:]
    return post, data


def _assert_identical(a: mx.VariationalMixture, b: mx.VariationalMixture) -> None:
    assert type(b) is mx.VariationalMixture
    assert type(b.family) is type(a.family) and b.family == a.family
    assert type(b.weights) is type(a.weights)
    assert jax.tree.structure(b) == jax.tree.structure(a)  # NamedTuple classes and the family included
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        u, v = np.asarray(u), np.asarray(v)
        assert (v.dtype, v.shape) == (u.dtype, u.shape)
        assert v.tobytes() == u.tobytes()


def _saved(post: mx.VariationalMixture, tmp_path) -> bytes:
    path = tmp_path / "saved.mixture"
    save(path, post)
    return path.read_bytes()


def _rejects(tmp_path, data: bytes, match: str) -> ModelFileError:
    path = tmp_path / "hostile.mixture"
    path.write_bytes(data)
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert re.search(match, info.value.reason), info.value.reason
    return info.value


# -- round trips --------------------------------------------------------------------------------

CASES = [
    "gaussian-full", "gaussian-tied", "gaussian-diag", "gaussian-spherical", "gaussian-identity",
    "poisson", "categorical", "independent",
]


@pytest.mark.parametrize("weights", ["stick-breaking", "dirichlet"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_round_trip_is_exact(request, tmp_path, name, dtype, weights):
    post, x = _posterior(request, name)
    post = _variant(post, dtype, weights)
    path = tmp_path / NAME
    save(path, post)
    back = load(path)
    _assert_identical(post, back)
    assert back.n_components == post.n_components
    header, _ = _unpack(path.read_bytes())
    assert header["format"] == mio.VARIATIONAL_FORMAT_NAME == "mixtures.VariationalMixture"
    assert header["weights"]["class"] == type(post.weights).__name__
    save(tmp_path / "again.mixture", back)  # deterministic: the same posterior gives the same bytes
    assert (tmp_path / "again.mixture").read_bytes() == path.read_bytes()
    if weights == "stick-breaking":  # one density check per family and dtype
        x = jnp.asarray(x, dtype)
        assert np.array_equal(back.mixture.log_prob(x), post.mixture.log_prob(x))


def test_fitted_posterior_predicts_identically(tmp_path, faithful, gaussian_full):
    save(tmp_path / NAME, gaussian_full)
    back = load(tmp_path / NAME)
    _assert_identical(gaussian_full, back)
    assert np.array_equal(back.log_prob(faithful), gaussian_full.log_prob(faithful))
    assert np.array_equal(back.predict(faithful), gaussian_full.predict(faithful))


def test_a_saved_mixture_still_loads_as_a_mixture(tmp_path, faithful, gaussian_full):
    mixture = gaussian_full.mixture
    save(tmp_path / "plain.mixture", mixture)
    back = load(tmp_path / "plain.mixture")
    assert type(back) is mx.Mixture and back.family == mixture.family
    for u, v in zip(jax.tree.leaves((mixture.weights, mixture.params)), jax.tree.leaves((back.weights, back.params))):
        assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
    header, _ = _unpack((tmp_path / "plain.mixture").read_bytes())
    assert header["format"] == "mixtures.Mixture" and set(header) == {
        "format", "format_version", "library_version", "family", "weights", "params",
    }
    assert np.array_equal(back.log_prob(faithful), mixture.log_prob(faithful))


def test_the_header_describes_the_posterior(tmp_path, independent):
    header, payload = _unpack(_saved(independent, tmp_path))
    assert header["format_version"] == [1, 0] and header["n_features"] == 3
    assert header["family"]["class"] == "Independent"
    assert header["weights"]["class"] == "StickBreaking"
    assert [f["name"] for f in header["weights"]["fields"]] == ["a", "b"]
    items = header["components"]["items"]
    assert [item["class"] for item in items] == ["ConjugatePrior", "ConjugatePrior"]
    assert [f["shape"] for f in items[1]["fields"]] == [[2], [2, 2]]  # Categorical((3,)): M = 2
    spec = items[0]["fields"][1]  # readable without this library
    mean = np.frombuffer(payload, spec["dtype"], math.prod(spec["shape"]), spec["offset"]).reshape(spec["shape"])
    assert np.array_equal(mean, independent.components[0].mean)


# -- saving refuses what loading would refuse, and leaves files alone ------------------------------


def test_save_refuses_malformed_posteriors(tmp_path, poisson, gaussian_full):
    c = poisson.components
    cases = [
        (mx.VariationalMixture(poisson.weights, mx.ConjugatePrior(-c.pseudo_count, c.mean), poisson.family),
         "pseudo_count"),
        (mx.VariationalMixture(poisson.weights, mx.ConjugatePrior(c.pseudo_count, -c.mean), poisson.family),
         "not a proper posterior"),
        (mx.VariationalMixture(poisson.weights, c, mx.Bernoulli()), "not a proper posterior"),
        (mx.VariationalMixture(mx.DirichletPrior(np.array([1.0, 0.0])), c, poisson.family), "weights.concentration"),
        (mx.VariationalMixture(mx.DirichletPrior(np.ones(3)), c, poisson.family), "shape"),
        (mx.VariationalMixture(DirichletProcessPrior(np.ones(2)), c, poisson.family), "DirichletPrior or Stick"),
        (mx.VariationalMixture(poisson.weights, c, mx.StudentT()), "no conjugate posterior"),
        (mx.VariationalMixture(gaussian_full.weights, gaussian_full.components, mx.Gaussian("diag")), "scale"),
        (mx.VariationalMixture(gaussian_full.weights, c, gaussian_full.family), "GaussianPrior"),
    ]
    (tmp_path / NAME).write_bytes(b"precious")
    for post, match in cases:
        with pytest.raises(ValueError, match=match):
            save(tmp_path / NAME, post)
    assert (tmp_path / NAME).read_bytes() == b"precious"  # nothing replaced
    assert os.listdir(tmp_path) == [NAME]  # no temporary file left behind
    with pytest.raises(TypeError, match="Mixture or a mixtures.VariationalMixture"):
        save(tmp_path / NAME, poisson.components)
    with pytest.raises(TypeError, match="traced"):
        jax.jit(lambda p: save(tmp_path / NAME, p))(poisson)


# -- loading: a valid checksum does not make a posterior valid ---------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory, gaussian_full, poisson, independent):
    """The saved bytes of a few posteriors, by name."""
    tmp = tmp_path_factory.mktemp("saved")
    posteriors = {
        "gaussian-full": gaussian_full,
        "gaussian-tied": _gaussian(gaussian_full, "tied"),
        "gaussian-diag": _gaussian(gaussian_full, "diag"),
        "poisson": poisson,
        "independent": independent,
    }
    out = {}
    for name, post in posteriors.items():
        save(tmp / name, post)
        out[name] = (tmp / name).read_bytes()
    return out


def _leaf_spec(node: dict, path: tuple):
    for key in path[:-1]:
        node = node["items"][key] if isinstance(key, int) else node[key]
    return next(f for f in node["fields"] if f["name"] == path[-1])


def _with_leaf(data: bytes, path: tuple, edit) -> bytes:
    """``data`` with one array edited (a valid checksum); ``path`` like ("components", 0, "mean")."""
    header, payload = _unpack(data)
    return edited_array(header, payload, _leaf_spec(header, path), edit)


def _asymmetric(a):
    a[0, 0, 1] += 0.5 * abs(a[0, 0, 1]) + 1.0
    return a


INVALID_VALUES = {
    "weights-a-zero": ("gaussian-full", ("weights", "a"), _set(0, 0.0), "weights.a"),
    "weights-b-negative": ("gaussian-full", ("weights", "b"), _set(1, -1.0), "weights.b"),
    "dirichlet-concentration-zero": ("poisson", ("weights", "concentration"), _set(0, 0.0), "concentration"),
    "weights-nan": ("gaussian-full", ("weights", "a"), _set(2, np.nan), "finite"),
    "mean-inf": ("gaussian-full", ("components", "mean"), _set((0, 1), np.inf), "finite"),
    "shrinkage-zero": ("gaussian-full", ("components", "shrinkage"), _set(1, 0.0), "shrinkage"),
    "shrinkage-negative": ("gaussian-diag", ("components", "shrinkage"), _set(0, -1.0), "shrinkage"),
    "full-dof-at-d-minus-1": ("gaussian-full", ("components", "dof"), _set(2, 1.0), "above D − 1"),
    "diag-dof-zero": ("gaussian-diag", ("components", "dof"), _set(0, 0.0), "dof"),
    "scale-not-positive-definite": (
        "gaussian-full", ("components", "scale"), _set((1, 0, 0), -1.0), "positive-definite"
    ),
    "scale-not-symmetric": ("gaussian-full", ("components", "scale"), _asymmetric, "symmetric"),
    "diag-scale-negative": ("gaussian-diag", ("components", "scale"), _set((2, 1), -3.0), "scale"),
    "tied-dof-differs": ("gaussian-tied", ("components", "dof"), _set(1, 400.0), "same for every component"),
    "pseudo-count-zero": ("poisson", ("components", "pseudo_count"), _set(0, 0.0), "pseudo_count"),
    "poisson-mean-negative": ("poisson", ("components", "mean"), _set((1, 0), -2.0), "not a proper posterior"),
    "independent-pseudo-count-negative": (
        "independent", ("components", 1, "pseudo_count"), _set(1, -1.0), r"components\[1\]\.pseudo_count"
    ),
    "categorical-mean-over-one": (  # P(category 0) = 1 − 0.9 − 0.9 < 0
        "independent", ("components", 1, "mean"), _set(0, 0.9), "outside the family's mean space"
    ),
    "poisson-mean-negative-non-integer-tau": (  # log Γ(τ) is finite there: the mean space check refuses it
        "poisson", ("components", "mean"), _set((0, 1), -0.123), "outside the family's mean space"
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_VALUES))
def test_values_outside_the_posterior_domain_are_refused(tmp_path, files, case):
    name, path, edit, match = INVALID_VALUES[case]
    _rejects(tmp_path, _with_leaf(files[name], path, edit), match)


def _edited(data: bytes, edit) -> bytes:
    header, payload = _unpack(data)
    header = copy.deepcopy(header)
    edit(header)
    return _pack(header, payload)


def _setter(*path_and_value):
    *path, value = path_and_value

    def edit(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _swap_weights_fields(header):
    fields = header["weights"]["fields"]
    fields[0]["name"], fields[1]["name"] = fields[1]["name"], fields[0]["name"]


HEADER_CASES = {
    "unknown-format": ("gaussian-full", _setter("format", "mixtures.Something"), "'mixtures.VariationalMixture'"),
    "missing-n-features": ("gaussian-full", lambda h: h.pop("n_features"), "'n_features'"),
    "missing-components": ("gaussian-full", lambda h: h.pop("components"), "'components'"),
    "n-features-string": ("gaussian-full", _setter("n_features", "2"), "n_features"),
    "n-features-wrong": ("gaussian-full", _setter("n_features", 3), "shape"),
    "n-features-zero": ("gaussian-full", _setter("n_features", 0), "n_features"),
    "n-features-huge": ("poisson", _setter("n_features", 10**18), "n_features"),
    "weights-class-unknown": ("gaussian-full", _setter("weights", "class", "os.system"), "DirichletPrior or"),
    "weights-as-tuple": (
        "gaussian-full", lambda h: h.update(weights={"class": "tuple", "items": [h["weights"]]}), "DirichletPrior or"
    ),
    "weights-fields-swapped": ("gaussian-full", _swap_weights_fields, "fields"),
    "weights-class-dirichlet": ("gaussian-full", _setter("weights", "class", "DirichletPrior"), "fields"),
    "components-class-unknown": ("gaussian-full", _setter("components", "class", "GaussianParams"), "GaussianPrior"),
    "components-conjugate-for-gaussian": (
        "gaussian-full", _setter("components", "class", "ConjugatePrior"), "GaussianPrior"
    ),
    "family-poisson-for-gaussian": (
        "gaussian-full", _setter("family", {"class": "Poisson", "fields": {"min_rate": 1e-6}}), "ConjugatePrior"
    ),
    "family-diag-for-full": ("gaussian-full", _setter("family", "fields", "covariance", "diag"), "shape"),
    "family-not-conjugate": (
        "gaussian-full", _setter("family", "fields", "covariance", "VEV"), "no conjugate posterior"
    ),
    "family-bernoulli-for-poisson": (
        "poisson", _setter("family", {"class": "Bernoulli", "fields": {"min_prob": 1e-6}}), "not a proper posterior"
    ),
    "scale-flattened": ("gaussian-full", _setter("components", "fields", 3, "shape", [3, 4]), "shape"),
    "mean-k-mismatch": ("gaussian-full", _setter("components", "fields", 0, "shape", [2, 3]), "shape"),
    "independent-columns": (
        "independent", _setter("family", "fields", "components", 1, 1, [5]), "columns"
    ),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_tampered_headers_are_refused(tmp_path, files, case):
    name, edit, match = HEADER_CASES[case]
    _rejects(tmp_path, _edited(files[name], edit), match)


def test_a_mixture_file_relabelled_as_a_posterior_is_refused(tmp_path, gaussian_full):
    save(tmp_path / "plain.mixture", gaussian_full.mixture)
    data = _edited((tmp_path / "plain.mixture").read_bytes(), _setter("format", "mixtures.VariationalMixture"))
    _rejects(tmp_path, data, "lacks the key")


def test_a_posterior_file_relabelled_as_a_mixture_is_refused(tmp_path, files):
    _rejects(tmp_path, _edited(files["gaussian-full"], _setter("format", "mixtures.Mixture")), "lacks the key")


def test_truncated_and_corrupted_files_are_refused(tmp_path, files):
    data = files["independent"]
    for cut in (0, 5, 13, 21, len(data) // 2, len(data) - 1):
        _rejects(tmp_path, data[:cut], "truncated")
    for i in range(0, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        error = _rejects(tmp_path, bytes(flipped), "")
        assert "checksum" in error.reason or "signature" in error.reason, error.reason
    _rejects(tmp_path, data + b"\0", "checksum")


def test_a_huge_number_of_categories_is_refused_by_size(tmp_path, files):
    def edit(header):
        header["family"]["fields"]["components"][1][0]["fields"].update(n_categories=[10**15], min_prob=1e-16)

    error = _rejects(tmp_path, _edited(files["independent"], edit), "parameters")
    assert "far more than" in error.reason


def test_fuzzed_headers_are_refused_or_loaded(tmp_path, files):
    """60 mutated headers (valid checksums) in a worker with a memory limit: each loads or raises ModelFileError."""
    rng = np.random.default_rng(7)
    names = sorted(files)
    paths = []
    for i in range(60):
        header, payload = _unpack(files[names[i % len(names)]])
        path = tmp_path / f"fuzz{i:02d}.mixture"
        path.write_bytes(_pack(_mutations(rng, copy.deepcopy(header)), payload))
        paths.append(str(path))
    results = load_in_worker(paths, x64=True)
    assert sum(r[1] == "refused" for r in results) > 40


def test_the_command_line_refuses_a_posterior_file_by_name(tmp_path, capsys):
    from mixtures.cli import main

    posterior = mx.VariationalMixture(
        mx.DirichletPrior(np.array([2.0, 3.0])), mx.ConjugatePrior(np.array([2.0, 3.0]), np.array([[1.0], [4.0]])),
        mx.Poisson(),
    )
    mx.save(tmp_path / "posterior.mixture", posterior)
    status = main(["info", str(tmp_path / "posterior.mixture")])
    err = capsys.readouterr().err
    assert status == 2 and "variational posterior" in err and "result.mixture" in err
