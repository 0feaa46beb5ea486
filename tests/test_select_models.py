"""``select(x, mx.Gaussian, models=...)``: the model × K grid, its table and summary, ``mixtures fit --models``.

Most of the cost is compilation, so the fits are shared: one grid over the four
covariance types and K = 1, 2, 3 on Old Faithful (float64), and one at K = 2
alone; the command line runs in-process with the same options, so it reuses
their compiled programs and must print the same numbers.
"""

import argparse
import math
import pathlib
import re

import jax
import numpy as np
import pytest

import mixtures as mx
from mixtures.cli import main
from mixtures._src.fitting import selection
from mixtures._src.fitting.grid import criterion_grid
from mixtures._src.fitting.models import all_models, model_families
from tests.helpers import mixture_log_prob, recording_compilations

FOUR = ("spherical", "diag", "tied", "full")  # mclust's VII, VVI, EEE, VVV
KS = (1, 2, 3)
X = mx.datasets.load_old_faithful()
FAITHFUL = pathlib.Path(mx.__file__).parent / "data" / "old_faithful.csv"
N, D = X.shape

# Free parameters of K components in D dimensions, counted here from each model's definition.
N_PARAMETERS = {
    "spherical": lambda k: k * D + k + k - 1,
    "diag": lambda k: k * D + k * D + k - 1,
    "tied": lambda k: k * D + D * (D + 1) // 2 + k - 1,
    "full": lambda k: k * D + k * D * (D + 1) // 2 + k - 1,
}
N_PARAMETERS |= {mclust: N_PARAMETERS[name] for mclust, name in zip(("VII", "VVI", "EEE", "VVV"), FOUR)}


@pytest.fixture(scope="module")
def grid():
    return mx.select(X, mx.Gaussian, KS, models=list(FOUR), key=jax.random.key(0), n_init=2)


@pytest.fixture(scope="module")
def at_two():
    return mx.select(X, mx.Gaussian, [2], models=["tied", "full"], key=jax.random.key(0), n_init=2)


# -- the fits -------------------------------------------------------------------------------


def test_models_by_name_fit_what_the_four_instances_fit(grid):
    by_instance = mx.select(X, [mx.Gaussian(m) for m in FOUR], KS, key=jax.random.key(0), n_init=2)
    assert [(row["family"], row["n_components"]) for row in grid.table] == [
        (mx.Gaussian(covariance=m), k) for m in FOUR for k in KS
    ]
    assert [row["model"] for row in grid.table] == [mx.Gaussian(covariance=m).covariance for m in FOUR for k in KS]
    assert grid.table == by_instance.table  # every number equal
    assert (grid.family, grid.n_components, grid.criterion) == (by_instance.family, by_instance.n_components, "bic")
    assert all(row["converged"] for row in grid.table)


def test_one_k_is_the_fit_of_each_model_with_the_same_key(at_two):
    for row, result in zip(at_two.table, at_two.results):
        alone = mx.fit(X, row["family"], 2, key=jax.random.key(0), n_init=2)
        assert float(alone.log_likelihood) == row["log_likelihood"]
        assert int(alone.n_iter) == row["n_iter"]
        for a, b in zip(jax.tree.leaves(alone.mixture.params), jax.tree.leaves(result.mixture.params)):
            np.testing.assert_array_equal(a, b)


def test_bic_mclust_is_minus_bic_and_2_log_l_minus_p_log_n(grid):
    for row, result in zip(grid.table, grid.results):
        assert row["bic_mclust"] == -row["bic"]
        m = result.mixture
        k = row["n_components"]
        covs = np.asarray(m.params.covariances)  # (K, D, D), (K, D) or (K,)
        if covs.ndim < 3:
            covs = np.stack([np.diag(c) if covs.ndim == 2 else np.eye(D) * c for c in covs])
        log_l = np.sum(mixture_log_prob(X, np.asarray(m.weights), np.asarray(m.params.means), covs))
        p = N_PARAMETERS[row["model"]](k)
        assert row["n_parameters"] == p
        np.testing.assert_allclose(row["bic_mclust"], 2 * log_l - p * math.log(N), rtol=1e-10)
    assert "mclust" in mx.select.__doc__ and "bic_mclust" in mx.Selection.__doc__


# -- the summary ----------------------------------------------------------------------------


def test_grid_is_k_by_model_with_the_choice_marked(grid):
    g = grid.grid()
    labels = tuple(mx.Gaussian(covariance=m).covariance for m in FOUR)
    assert g.values.shape == (3, 4) and g.n_components == KS and g.models == labels and g.criterion == "bic"
    for row in grid.table:
        assert g.values[KS.index(row["n_components"]), labels.index(row["model"])] == row["bic"]
    i, j = g.best
    assert (g.n_components[i], g.models[j]) == (grid.n_components, grid.family.covariance)
    assert g.values[i, j] == np.min(g.values)

    mclust = grid.grid("bic_mclust")
    np.testing.assert_array_equal(mclust.values, -g.values)
    assert mclust.best == g.best and mclust.values[g.best] == np.max(mclust.values)
    aic = grid.grid("aic")
    assert aic.values[aic.best] == min(row["aic"] for row in grid.table)

    text = str(g).splitlines()
    assert text[0] == f"BIC, lower is better; * the best: {g.models[j]} with K = {g.n_components[i]}"
    assert text[1].split() == ["K", *labels]
    for line, k, values in zip(text[2:], KS, g.values):
        assert line.split()[0] == str(k)
        assert [float(v.rstrip("*")) for v in line.split()[1:]] == [round(v, 3) for v in values]
    assert "".join(text[1:]).count("*") == 1 and text[2 + i].split()[1 + j].endswith("*")
    assert "higher is better" in str(mclust).splitlines()[0]


def test_grid_labels_ties_and_gaps_without_fitting():
    rows = [
        {"family": mx.Poisson(), "model": None, "n_components": 1, "bic": 3.0},
        {"family": mx.Poisson(), "model": None, "n_components": 2, "bic": 2.0},
        {"family": mx.Gaussian("diag"), "model": "diag", "n_components": 2, "bic": 2.0},
        {"family": mx.Gaussian("diag"), "model": "diag", "n_components": 3, "bic": float("nan")},
    ]
    g = criterion_grid(rows, "bic")
    assert g.models == ("Poisson", "diag") and g.n_components == (1, 2, 3)
    assert g.best == (1, 0)  # a tie goes to the earlier model
    assert np.isnan(g.values[0, 1]) and np.isnan(g.values[2, 0]) and np.isnan(g.values[2, 1])
    assert str(g).splitlines()[-1].split() == ["3"]  # gaps print blank
    twins = [dict(rows[2]), dict(rows[2], family=mx.Gaussian("diag", reg_covar=1e-3), bic=1.0)]
    assert criterion_grid(twins, "bic").models == tuple(repr(row["family"]) for row in twins)


def test_grid_marks_cells_that_stopped_at_max_iter():
    rows = [
        {"family": mx.Gaussian("diag"), "model": "diag", "n_components": 1, "bic": 3.0, "converged": True},
        {"family": mx.Gaussian("diag"), "model": "diag", "n_components": 2, "bic": 2.0, "converged": False},
        {"family": mx.Gaussian("full"), "model": "full", "n_components": 1, "bic": 2.5, "converged": False},
        {"family": mx.Gaussian("full"), "model": "full", "n_components": 2, "bic": 4.0, "converged": True},
    ]
    g = criterion_grid(rows, "bic")
    np.testing.assert_array_equal(g.converged, [[True, False], [False, True]])
    text = str(g).splitlines()
    assert text[0] == ("BIC, lower is better; * the best: diag with K = 2 (not converged); "
                       "! not converged within max_iter")
    assert text[2].split() == ["1", "3.000", "2.500!"] and text[3].split() == ["2", "2.000*", "4.000"]
    everything = criterion_grid([dict(row, converged=True) for row in rows], "bic")
    assert "!" not in str(everything) and "not converged" not in str(everything)


def test_grid_rejects_an_unknown_criterion(grid):
    expected = r"`criterion` must be one of \('bic', 'aic', 'icl', 'bic_mclust'\); received 'BIC'"
    with pytest.raises(ValueError, match=expected):
        grid.grid("BIC")


# -- bad arguments, before anything is compiled -------------------------------------------------

BAD = [
    ("class_without_models", dict(family=mx.Gaussian), TypeError, ["`family`", "class mx.Gaussian", 'models="all"']),
    ("other_class", dict(family=mx.Poisson), TypeError, ["`family`", "class mx.Poisson", "mx.Poisson()"]),
    ("models_with_instance", dict(family=mx.Gaussian("full"), models=["full"]), TypeError,
     ["`models`", "the class mx.Gaussian", "Gaussian(covariance='full'"]),
    ("models_with_list", dict(family=[mx.Gaussian("full")], models="all"), TypeError,
     ["`models`", "class mx.Gaussian"]),
    ("models_with_other_class", dict(family=mx.Poisson, models="all"), TypeError, ["`models`", "Poisson"]),
    ("models_string", dict(models="full"), TypeError, ["`models`", '"all"', "['full']"]),
    ("models_number", dict(models=3), TypeError, ["`models`", "received 3"]),
    ("models_empty", dict(models=[]), ValueError, ["`models`", "at least one"]),
    ("models_item", dict(models=["full", None]), TypeError, ["`models[1]`", "string"]),
    ("models_unknown", dict(models=["diag", "ful"]), ValueError, ["`models[1]`", "VVV, spherical, diag, tied, full", "'ful'"]),
    ("models_twice", dict(models=["full", "diag", "full"]), ValueError, ["`models`", "twice", "at 0 and 2"]),
    ("models_alias", dict(models=["full", "diag", "VVV"]), ValueError, ["`models`", "one model twice, as 'full' and 'VVV'", "at 0 and 2"]),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_select_rejects_bad_models_before_compiling(case, monkeypatch):
    _, overrides, error, words = case
    monkeypatch.setattr(selection, "_start_candidates", None)
    kwargs = dict(x=X, family=mx.Gaussian, n_components=KS, key=jax.random.key(0)) | overrides
    with recording_compilations() as compiled, pytest.raises(error) as info:
        mx.select(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert not compiled


def test_all_is_every_model_the_gaussian_lists():
    expected = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
    assert all_models() == mx.Gaussian.MODELS == expected
    assert model_families(mx.Gaussian, "all") == tuple(mx.Gaussian(covariance=m) for m in expected)


# -- the command line -----------------------------------------------------------------------


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert status == 0, out.err
    return out.out


def test_cli_models_prints_the_grid_select_gives(grid, capsys):
    out = _run(["fit", FAITHFUL, "-k", "auto", "--k-max", 3, "--models", ",".join(FOUR), "--restarts", 2,
                "--float64", "--no-progress"], capsys)
    assert str(grid.grid()) in out
    assert f"model             {grid.family.covariance} (chosen by BIC among 4 models)" in out
    assert re.search(rf"components\s+{grid.n_components} \(chosen by BIC among 1\.\.3\)", out)
    assert f"family            {grid.family!r}" in out


def test_cli_models_with_a_given_k_picks_the_model_at_that_k(at_two, capsys):
    out = _run(["fit", FAITHFUL, "-k", 2, "--models", "tied,full", "--restarts", 2, "--float64", "--no-progress"],
               capsys)
    assert str(at_two.grid()) in out
    assert re.search(r"components\s+2 \(given\)", out) and f"family            {at_two.family!r}" in out


@pytest.mark.parametrize("options, words", [
    (["--family", "poisson", "--models", "all"], ["--models", "--family gaussian", "poisson"]),
    (["--covariance", "diag", "--models", "full"], ["--models", "--covariance"]),
    (["--models", "full,ful"], ["--models", "'ful'", "EII, VII", "spherical, diag, tied, full"]),
    (["--models", "full,,diag"], ["--models", "'full,,diag'"]),
    (["--models", "diag,full,diag"], ["--models", "'diag' twice"]),
    (["-k", 2, "--models", "all", "--checkpoint", "fit.ckpt"], ["--checkpoint", "--models"]),
    (["--models", "full", "--reg-covar", "-1"], ["--reg-covar", "reg_covar"]),
])
def test_cli_models_errors(options, words, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(selection, "_start_candidates", None)
    status = main(["fit", str(FAITHFUL), *map(str, options)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("mixtures: error: "), err
    for word in words:
        assert word in err[0], (word, err[0])
    assert not (tmp_path / "fit.ckpt").exists()


def test_cli_documents_models():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    from mixtures.cli import fit

    fit.add_parser(sub, [])
    assert "--models" in sub.choices["fit"].format_help()
    docs = (pathlib.Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    assert "--models" in docs
