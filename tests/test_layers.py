"""The layers of mixtures/_src, checked: the import-linter contracts in pyproject.toml, one test each.

Lowest first: core; engine and families side by side; fitting; the front ends
(``mixtures``, ``mixtures.io``, ``mixtures.cli``, ...) on top. A lower layer
importing a higher one, directly or through other modules, breaks a contract.
"""

from __future__ import annotations

import inspect
import io
import os
import subprocess
import sys
import tokenize
import tomllib
from pathlib import Path

import pytest

import mixtures as mx

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.parametrize("contract", [c["id"] for c in CONTRACTS])
def test_import_contract_is_kept(contract):
    # This checkout's package, whatever else the environment has installed as mixtures.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--contract", contract],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"import-linter:\n{out.stdout}\n{out.stderr}"
    assert "1 kept, 0 broken" in out.stdout, out.stdout


def built_in_family_names():
    return sorted(
        name for name in mx.__all__
        if inspect.isclass(obj := getattr(mx, name)) and issubclass(obj, mx.Family) and obj is not mx.Family
    )


def test_engine_code_names_no_family_class():
    """The engine reaches a family only through the ``Family`` contract, never by naming a family.

    Identifiers in the code count; comments and strings (docstring examples
    fitting ``mx.Gaussian``) do not.
    """
    names = set(built_in_family_names())
    assert {"Gaussian", "Poisson", "GradientFamily"} <= names
    found = []
    for path in sorted((ROOT / "mixtures" / "_src" / "engine").rglob("*.py")):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        for token in tokens:
            if token.type == tokenize.NAME and token.string in names:
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.line.strip()}")
    assert not found, "the engine names family classes:\n" + "\n".join(found)
