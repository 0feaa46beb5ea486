"""EM for Gaussian mixtures: mixtures against scikit-learn, gmmx and pomegranate.

One run measures, on data drawn from a known mixture (or a real data set) and
from one shared starting point per case:

- the machine's GEMM rate (a jitted square matmul, float32 and float64, best of
  several calls) under each XLA:CPU fusion setting;
- for every implementation: seconds per EM iteration, from two timed fits of
  ``--iters + 1`` and 1 iterations with the tolerance at zero, so set-up,
  validation and the final E-step cancel out; compile seconds (JAX
  implementations: the first call, a fit of one iteration, less the same
  call once compiled);
  peak resident memory (VmHWM, else ``ru_maxrss``, of the implementation's own
  subprocess); a whole fit to convergence (tol = 1e-3 on the mean
  log-likelihood per sample) with its seconds and iterations;
- the mean log-likelihood per sample of every fitted mixture, computed by one
  float64 NumPy scorer, and its relative difference to scikit-learn's: all
  implementations start from the same parameters, so after the same number
  of iterations they must agree (float64 to 1e-6, float32 to 1e-4; whole
  fits, whose stopping rules may differ by an iteration, to within tol in
  absolute value). Larger differences are flagged MISMATCH;
- ratios: each peer's seconds per iteration, at its fastest fusion setting,
  divided by this row's;
- the fraction of the GEMM floor: 4·N·K·M flops per iteration (the E-step's
  (N×M)·(M×K) product of the per-row statistics with the components'
  natural parameters, and the M-step's (K×N)·(N×M) product of
  responsibilities with the same statistics) at the best measured GEMM rate
  of the implementation's dtype. M = D + D(D+1)/2 for "full", 2D for
  "diag", D + 1 for "spherical" and D for "tied" (its second moments do not
  depend on the responsibilities);
- for mixtures float32 and float64, 8 restarts under ``jax.vmap``
  (``mx.fit(..., n_init=8)``) against 8 sequential single fits with the
  keys ``jax.random.split(key, 8)``, and
  whether restart i and single fit i reached the same log-likelihood (they
  are the same fits only if ``fit`` gives restart i the key
  ``jax.random.split(key, 8)[i]`` and a single fit its key unchanged).

Data kinds, chosen by a suffix of the case name:

- "hard" (no suffix, e.g. ``1000000x16x16-full``): ``make_data``, means
  N(0, 4²) per coordinate and covariances FₖᵀFₖ with Fₖ = I + N(0, 0.3²):
  close, ill-conditioned clusters;
- ``-wc``, well-conditioned (e.g. ``1000000x16x16-full-wc``):
  ``make_rotated_data``, Σₖ = Qₖ diag(λₖ) Qₖᵀ with Qₖ a random orthogonal
  matrix (QR of a Gaussian matrix, columns' signs fixed by R's diagonal) and
  eigenvalues λ log-uniform over [1, 10³] (condition number ≤ 10³); means
  N(0, 60²) per coordinate, so two centres lie 60·√(2D) apart in root mean
  square (120 for D = 2, 340 for D = 16), several times the largest
  standard deviation √10³ ≈ 32: separated clusters (for D = 16; with D = 2
  the closest of 8 centres can come within one such deviation);
- ``-ov``, overlapping: the same covariances, means N(0, 10²) (centres
  10·√(2D) apart in root mean square, 57 for D = 16): clusters that overlap;
- ``digits-COV``: scikit-learn's digits (``sklearn.datasets.load_digits``,
  N = 1797, D = 64 pixels of 0..16, K = 10). Some pixels are zero in every
  image, so the covariances are singular: every implementation gets
  ``reg_covar`` = 1e-3 (mixtures' ``mx.Gaussian(reg_covar=...)``,
  scikit-learn's and gmmx's ``reg_covar``: each adds it to the covariance
  diagonal at every M-step); the other kinds use 1e-6, scikit-learn's
  default. pomegranate has no such setting (its ``Normal(min_cov=...)`` is
  stored but unused in 1.1.2), so it runs unregularised on the synthetic
  kinds and is "n/a" on digits. The start's means are K rows of the data
  chosen with ``numpy.random.default_rng(0)``, then perturbed by
  ``make_start`` as for the other kinds.

Implementations: mixtures float32 and float64, scikit-learn float64, gmmx
float32 (full and diagonal covariances) and pomegranate float32 (full,
diagonal, spherical), the last two when installed. Every implementation runs
in its own subprocess, with a timeout; a subprocess that stops using the CPU
for a minute is reported "hung" and killed (gmmx can deadlock on batched
triangular solves, see shared/JAX-CPU-NOTES.md).

XLA:CPU's fusion setting changes JAX timings severalfold on small machines,
so each JAX implementation (mixtures, gmmx) runs twice, with
``--xla_cpu_experimental_ynn_fusion_type=`` (fusion off: the empty list) and
with ``--xla_cpu_experimental_ynn_fusion_type=-invalid`` (fusion on: XLA's
default list less a type that is never in it, i.e. the default list itself,
whatever the jaxlib version; "default" is not a valid value), appended to
any XLA_FLAGS already set. Both name the flag, so a library that opts in to a
setting when XLA_FLAGS does not mention it leaves it alone. The
script checks that "fusion on" compiles a test program as XLA_FLAGS without
the flag does.

mixtures runs with JAX's x64 mode on for both dtypes (float32 data stays
float32; with x64 on, its large passes may take float64 matrix products).
For mixtures rows, "form" is the formulation of the E-step pass the library
reports for the fitted mixture on the case's rows
(``mixtures._src.families.gaussian.fast.formulation``: "whitened" or
"products-float64", the matrix products and the dtype they run in).

Usage (see benchmarks/README.md):
  python benchmarks/bench_em.py                       # the quick cases
  python benchmarks/bench_em.py --cases full --out results.json
  python benchmarks/bench_em.py --cases 100000x16x8-diag,restarts-100000x16x8 --impl mixtures,sklearn
  python benchmarks/bench_em.py --cases 100000x16x8-full-wc,100000x16x8-full-ov,digits-full
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# "-invalid" removes LIBRARY_FUSION_TYPE_INVALID, never in the list, from XLA's default list:
# the default itself, named explicitly (a library may opt in to a setting when XLA_FLAGS has none).
# An explicit list such as "dot,eltwise,reduce" is not the default of jaxlib 0.10.2.
FUSION_SETTINGS = {"fusion-off": "", "fusion-on": "-invalid"}

IMPLEMENTATIONS = ("mixtures-f32", "mixtures-f64", "sklearn-f64", "gmmx-f32", "pomegranate-f32")
SUPPORTED = {
    "mixtures": ("full", "diag", "spherical", "tied"),
    "sklearn": ("full", "diag", "spherical", "tied"),
    "gmmx": ("full", "diag"),
    "pomegranate": ("full", "diag", "spherical"),
}
MODULES = {"mixtures": "mixtures", "sklearn": "sklearn", "gmmx": "gmmx", "pomegranate": "pomegranate"}
PEERS = ("sklearn", "gmmx", "pomegranate")

PRESETS = {
    "quick": ["100000x2x3-full", "100000x16x8-full"],
    "full": [
        "100000x2x3-full",
        "100000x16x8-full",
        "1000000x16x16-full",
        "200000x64x32-full",
        "1000000x2x8-full",
        "100000x16x8-diag",
        "100000x16x8-spherical",
        "100000x16x8-tied",
        "restarts-100000x16x8",
        "1000000x16x16-full-wc",
        "1000000x16x16-full-ov",
        "100000x16x8-full-wc",
        "digits-full",
        "restarts-100000x16x8-wc",
    ],
    # Not in --help: a seconds-long end-to-end check of the script itself.
    "tiny": ["2000x2x3-full", "2000x16x4-full", "2000x16x4-full-wc", "digits-diag", "restarts-2000x16x4"],
}
TARGET_CASE = "1000000x16x16-full"
N_RESTARTS = 8
FIT_TOL = 1e-3
FIT_MAX_ITER = 1000
GEMM_REPEATS = 7
HANG_WINDOW_S = 60.0
# Relative differences for fixed-length fits; whole fits are compared in absolute value against FIT_TOL.
AGREEMENT = {"iters-f64": 1e-6, "iters-f32": 1e-4}
GIB = 2.0**30
# Data kinds (see the module docstring): their names in the tables, and the spread of the
# well-conditioned and overlapping kinds' means.
DATA_NAMES = {"hard": "hard", "wc": "well-conditioned", "ov": "overlapping", "digits": "scikit-learn digits"}
MEAN_SPREAD = {"wc": 60.0, "ov": 10.0}
EIGENVALUE_RANGE = (1.0, 1e3)
DIGITS_SHAPE = (1797, 64, 10)
DIGITS_REG_COVAR = 1e-3
DEFAULT_REG_COVAR = 1e-6
UNREGULARISED = ("pomegranate",)  # no reg_covar: n/a where a case needs more than the default


# ---------------------------------------------------------------------------
# Cases and data


def parse_case(name):
    """'NxDxK-COV[-KIND]', 'digits-COV', 'restarts-NxDxK[-KIND]' or 'restarts-digits' -> a case's dict.

    The dict has name, kind ("em" or "restarts"), data ("hard" without a
    suffix, "wc", "ov" or "digits"), n, d, k, covariance and reg_covar.
    """
    match = re.fullmatch(
        r"(?:(restarts)-)?(?:(\d+)x(\d+)x(\d+)|(digits))(?:-(full|diag|spherical|tied))?(?:-(wc|ov))?", name
    )
    restarts = bool(match and match.group(1))
    if not match or restarts == bool(match.group(6)) or (match.group(5) and match.group(7)):
        raise ValueError(
            f"--cases: {name!r} is not a case; write NxDxK-COV (COV one of full, diag, spherical, tied), "
            "NxDxK-COV-wc or NxDxK-COV-ov (well-conditioned or overlapping clusters), digits-COV, "
            "restarts-NxDxK[-wc|-ov] or restarts-digits, or use quick or full."
        )
    data = "digits" if match.group(5) else (match.group(7) or "hard")
    n, d, k = DIGITS_SHAPE if data == "digits" else (int(match.group(i)) for i in (2, 3, 4))
    if not 1 <= k <= n or d < 1:
        raise ValueError(f"--cases: {name!r} needs 1 ≤ K ≤ N and D ≥ 1.")
    return {"name": name, "kind": "restarts" if restarts else "em", "data": data, "n": n, "d": d, "k": k,
            "covariance": match.group(6) or "full",
            "reg_covar": DIGITS_REG_COVAR if data == "digits" else DEFAULT_REG_COVAR}


def stats_width(d, covariance):
    """M: per-row statistics an iteration multiplies by the K components (see the module docstring)."""
    return {"full": d + d * (d + 1) // 2, "diag": 2 * d, "spherical": d + 1, "tied": d}[covariance]


def make_data(n, d, k, seed=0):
    """(n, d) float64 rows from k Gaussian clusters with random means and correlated noise.

    The draws are those of tests/test_degenerate.py's copy of this generator;
    the rows are formed cluster by cluster, without an (n, d, d) temporary.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(k, d))
    factors = rng.normal(0.0, 0.3, size=(k, d, d)) + np.eye(d)
    return rows_from_factors(rng, n, means, factors), means


def rows_from_factors(rng, n, means, factors):
    """(n, d) rows means[z] + e Fₖ (e standard normal, z uniform over the k clusters), cluster by cluster."""

    z = rng.choice(len(means), size=n)
    x = rng.standard_normal((n, means.shape[1]))
    for j in range(len(means)):
        rows = z == j
        x[rows] = means[j] + x[rows] @ factors[j]
    return x


def random_rotation(rng, d):
    """A (d, d) orthogonal matrix drawn uniformly: Q of the QR of a Gaussian matrix, columns' signs fixed by R."""
    import numpy as np

    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.where(np.diagonal(r) < 0, -1.0, 1.0)


def make_rotated_data(n, d, k, spread, seed=0):
    """(n, d) float64 rows from k Gaussian clusters with condition number ≤ 10³, and their means.

    Σₖ = Qₖ diag(λₖ) Qₖᵀ with Qₖ from :func:`random_rotation` and λₖ
    log-uniform over ``EIGENVALUE_RANGE``; the means are N(0, spread²) per
    coordinate (see the module docstring for the spreads of "wc" and "ov").
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, spread, size=(k, d))
    low, high = np.log10(EIGENVALUE_RANGE)
    # Rows are z @ Fₖ with Fₖ = diag(√λₖ) Qₖᵀ, so that FₖᵀFₖ = Σₖ.
    factors = [np.sqrt(10.0 ** rng.uniform(low, high, size=d))[:, None] * random_rotation(rng, d).T
               for _ in range(k)]
    return rows_from_factors(rng, n, means, factors), means


def load_digits_data(k, seed=0):
    """scikit-learn's digits as (1797, 64) float64 rows, and k of those rows (chosen by ``seed``) as means."""
    import numpy as np
    from sklearn.datasets import load_digits

    x = np.asarray(load_digits().data, np.float64)
    if x.shape != DIGITS_SHAPE[:2]:
        raise ValueError(f"load_digits() gave {x.shape} rows, expected {DIGITS_SHAPE[:2]}.")
    rows = np.random.default_rng(seed).choice(x.shape[0], size=k, replace=False)
    return x, x[np.sort(rows)].copy()


def case_data(case):
    """The case's (n, d) float64 rows and the means its start is drawn around, by its data kind."""
    if case["data"] == "digits":
        return load_digits_data(case["k"])
    if case["data"] == "hard":
        return make_data(case["n"], case["d"], case["k"])
    return make_rotated_data(case["n"], case["d"], case["k"], MEAN_SPREAD[case["data"]])


def make_start(x, means, covariance, seed=1):
    """A shared starting point near (not at) the truth, in scikit-learn's covariance layouts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    k, d = means.shape
    start_means = means + rng.normal(0.0, 0.5, size=means.shape)
    shared = np.cov(x.T).reshape(d, d) / k + 0.1 * np.eye(d)
    covariances = {
        "full": np.stack([shared] * k),
        "tied": shared,
        "diag": np.tile(np.diag(shared), (k, 1)),
        "spherical": np.full(k, np.mean(np.diag(shared))),
    }[covariance]
    return np.full(k, 1.0 / k), start_means, covariances


def full_covariances(covariances, covariance, k, d):
    """Any scikit-learn covariance layout as (K, D, D) matrices."""
    import numpy as np

    c = np.asarray(covariances, np.float64)
    if covariance == "full":
        return c.reshape(k, d, d)
    if covariance == "tied":
        return np.broadcast_to(c.reshape(-1, d, d)[0], (k, d, d))
    if covariance == "diag":
        return np.stack([np.diag(row) for row in c.reshape(k, d)])
    return c.reshape(k, -1)[:, :1, None] * np.eye(d)  # spherical: one variance per component


def mean_log_likelihood(x, weights, means, covariances, covariance, block=65536):
    """Mean log-likelihood per row of a Gaussian mixture, in float64 (the common scorer); NaN if invalid."""
    import numpy as np

    weights = np.asarray(weights, np.float64).reshape(-1)
    means = np.asarray(means, np.float64)
    k, d = means.shape
    try:
        covs = full_covariances(covariances, covariance, k, d)
        chol = np.linalg.cholesky(covs)
    except (np.linalg.LinAlgError, ValueError):
        return float("nan")
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means)) and np.all(np.isfinite(chol))):
        return float("nan")
    whiten = np.linalg.inv(chol)  # L⁻¹, with Σ = L Lᵀ
    log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    with np.errstate(divide="ignore"):
        constant = np.log(weights) - 0.5 * (d * math.log(2.0 * math.pi) + log_det)
    total = 0.0
    for start in range(0, x.shape[0], block):
        rows = np.asarray(x[start : start + block], np.float64)
        logp = np.empty((rows.shape[0], k))
        for j in range(k):
            y = (rows - means[j]) @ whiten[j].T
            logp[:, j] = constant[j] - 0.5 * np.einsum("nd,nd->n", y, y)
        top = np.max(logp, axis=1, keepdims=True)
        total += float(np.sum(top[:, 0] + np.log(np.sum(np.exp(logp - top), axis=1))))
    return total / x.shape[0]


# ---------------------------------------------------------------------------
# Children: each runs in its own process


def peak_rss_bytes():
    """This process's peak resident memory: VmHWM on Linux, else ``ru_maxrss``.

    Linux keeps ``ru_maxrss`` across fork and exec, so a child started by a
    large parent would report the parent's peak; VmHWM belongs to the
    child's own address space.
    """
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def timed(fn, block=lambda r: r):
    start = time.perf_counter()
    result = block(fn())
    return time.perf_counter() - start, result


def child_gemm(spec):
    """GFLOP/s of a jitted square matmul, and a fingerprint of how a small fused program compiles."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def e_step(x, u):  # whitened residuals of every row under every component, then log-sum-exp
        y = jnp.einsum("nd,kde->nke", x, u)
        return jax.nn.logsumexp(-0.5 * jnp.sum(y * y, axis=-1), axis=1).sum()

    x, u = jnp.ones((512, 16), jnp.float32), jnp.ones((2, 4, 16, 16), jnp.float32)
    text = jax.jit(jax.vmap(e_step, in_axes=(None, 0))).lower(x, u).compile().as_text()
    out = {"fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16], "ynn_fusions": text.count("__ynn_fusion")}
    if spec["measure"]:
        size = spec["size"]
        matmul = jax.jit(lambda a, b: a @ b)
        for dtype in ("float32", "float64"):
            a = jax.random.normal(jax.random.key(0), (size, size), dtype)
            b = jax.random.normal(jax.random.key(1), (size, size), dtype)
            matmul(a, b).block_until_ready()
            best = min(timed(lambda: matmul(a, b), jax.block_until_ready)[0] for _ in range(GEMM_REPEATS))
            out[dtype] = 2.0 * size**3 / best / 1e9
    return out


def formulation_of(mixture, n_rows):
    """mixtures' E-step pass for ``mixture``'s parameters on ``n_rows`` rows (``fast.formulation``)."""
    from mixtures._src.families.gaussian import fast

    return str(fast.formulation(mixture.family, mixture.params, n_rows))


def load_case(spec, dtype):
    import numpy as np

    x = np.load(spec["x_" + dtype])
    start = np.load(spec["start"])
    return x, start["weights"].astype(dtype), start["means"].astype(dtype), start["covariances"]


class Adapter:
    """One implementation, started from the case's parameters: ``fit(max_iter, tol) -> (seconds, fitted)``.

    ``fitted`` is (weights, means, covariances in scikit-learn's layout, iterations run).
    ``formulation(n_rows)``, mixtures only, names the E-step pass the library
    uses for the last fitted mixture (see :func:`formulation_of`).
    """

    compiles = False
    formulation = None


class MixturesAdapter(Adapter):
    compiles = True

    def __init__(self, spec, dtype):
        import jax

        # x64 on for both dtypes: float32 data stays float32, and its large passes may then
        # take the float64 products (mixtures/_src/core/precision.py).
        jax.config.update("jax_enable_x64", True)
        import mixtures as mx

        self.jax, self.mx = jax, mx
        x, weights, means, covs = load_case(spec, dtype)
        self.x = jax.device_put(x)
        self.data_bytes = x.nbytes
        del x
        self.covariance = spec["covariance"]
        self.family = mx.Gaussian(self.covariance, reg_covar=spec["reg_covar"])
        self.start = mx.Mixture(weights, self.family.make_params(means, covs), self.family)
        self.fitted = None

    def fit(self, max_iter, tol):
        def run():
            return self.mx.fit(self.x, self.family, self.start.n_components, key=None, init=self.start,
                               max_iter=max_iter, tol=tol)

        seconds, r = timed(run, self.jax.block_until_ready)
        m = self.fitted = r.mixture
        covs = m.params.covariances
        if self.covariance == "tied":
            covs = covs[0]
        return seconds, (m.weights, m.params.means, covs, int(r.n_iter))

    def formulation(self, n_rows):
        return formulation_of(self.fitted, n_rows)


class SklearnAdapter(Adapter):
    def __init__(self, spec, dtype):
        import numpy as np

        self.x, weights, means, covs = load_case(spec, dtype)
        self.data_bytes = self.x.nbytes
        self.covariance = spec["covariance"]
        precisions = 1.0 / covs if self.covariance in ("diag", "spherical") else np.linalg.inv(covs)
        self.options = dict(n_components=len(weights), covariance_type=self.covariance, weights_init=weights,
                            means_init=means, precisions_init=precisions, reg_covar=spec["reg_covar"],
                            init_params="random_from_data", random_state=0)

    def fit(self, max_iter, tol):
        import warnings

        from sklearn.mixture import GaussianMixture

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning when tol = 0
            seconds, gm = timed(lambda: GaussianMixture(max_iter=max_iter, tol=tol, **self.options).fit(self.x))
        return seconds, (gm.weights_, gm.means_, gm.covariances_, int(gm.n_iter_))


class GmmxAdapter(Adapter):
    compiles = True

    def __init__(self, spec, dtype):
        import jax
        from gmmx import EMFitter, GaussianMixtureModelJax

        self.jax, self.fitter = jax, EMFitter
        x, weights, means, covs = load_case(spec, dtype)
        self.x = jax.device_put(x)
        self.data_bytes = x.nbytes
        del x
        self.covariance = spec["covariance"]
        self.reg_covar = spec["reg_covar"]
        self.start = GaussianMixtureModelJax.from_squeezed(
            means=jax.numpy.asarray(means), covariances=jax.numpy.asarray(covs.astype(dtype)),
            weights=jax.numpy.asarray(weights), covariance_type=self.covariance,
        )

    def fit(self, max_iter, tol):
        import numpy as np

        fitter = self.fitter(max_iter=max_iter, tol=tol, reg_covar=self.reg_covar)
        seconds, r = timed(lambda: fitter.fit(self.x, self.start), self.jax.block_until_ready)
        g = r.gmm
        covs = np.asarray(g.covariances.values)
        covs = covs[0] if self.covariance == "full" else covs[0, :, :, 0]
        return seconds, (g.weights_numpy, g.means_numpy, covs, int(r.n_iter))


class PomegranateAdapter(Adapter):
    TYPES = {"full": "full", "diag": "diag", "spherical": "sphere"}

    def __init__(self, spec, dtype):
        import numpy as np
        import torch

        self.torch = torch
        x, weights, means, covs = load_case(spec, dtype)
        self.x = torch.from_numpy(x)
        self.data_bytes = x.nbytes
        self.covariance = spec["covariance"]
        self.weights = weights / weights.sum()
        self.means = means
        if self.covariance == "spherical":
            covs = np.repeat(covs[:, None], means.shape[1], axis=1)
        self.covs = covs.astype(dtype)

    def fit(self, max_iter, tol):
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel

        torch = self.torch
        components = [
            Normal(means=torch.from_numpy(self.means[j].copy()), covs=torch.from_numpy(self.covs[j].copy()),
                   covariance_type=self.TYPES[self.covariance])
            for j in range(len(self.weights))
        ]
        # pomegranate stops when the summed log-likelihood improves by less than tol; tol = 0 here
        # means "run max_iter iterations".
        total_tol = -math.inf if tol == 0 else tol * self.x.shape[0]
        model = GeneralMixtureModel(components, priors=torch.from_numpy(self.weights.copy()), max_iter=max_iter,
                                    tol=total_tol)
        steps = [0]
        update = model.from_summaries

        def counted():
            steps[0] += 1
            update()

        model.from_summaries = counted
        seconds, _ = timed(lambda: model.fit(self.x))
        covs = torch.stack([c.covs.detach() for c in model.distributions]).numpy()
        if self.covariance == "spherical":
            covs = covs.reshape(len(components), -1)[:, 0]
        means = torch.stack([c.means.detach() for c in model.distributions]).numpy()
        return seconds, (model.priors.detach().numpy(), means, covs, steps[0])


ADAPTERS = {"mixtures": MixturesAdapter, "sklearn": SklearnAdapter, "gmmx": GmmxAdapter,
            "pomegranate": PomegranateAdapter}


def child_em(spec):
    """Times one implementation on one case; returns its measurements."""
    import numpy as np

    library, precision = spec["impl"].split("-")
    dtype = {"f32": "float32", "f64": "float64"}[precision]
    adapter = ADAPTERS[library](spec, dtype)
    out = {"data_gib": adapter.data_bytes / GIB, "rss_after_load_gib": peak_rss_bytes() / GIB}
    n_iter = spec["iters"]
    # Each program compiles on its first call; the timed calls come after.
    out["first_call_s"], _ = adapter.fit(1, 0.0)
    if adapter.compiles:
        adapter.fit(n_iter + 1, 0.0)
    one = min(adapter.fit(1, 0.0)[0] for _ in range(spec["repeats"]))
    runs = [adapter.fit(n_iter + 1, 0.0) for _ in range(spec["repeats"])]
    many, fixed = min(runs, key=lambda r: r[0])
    # None when the difference is lost in timer noise (tiny data).
    out["per_iter_s"] = (many - one) / n_iter if many > one else None
    if adapter.compiles:
        adapter.fit(FIT_MAX_ITER, FIT_TOL)  # an implementation whose max_iter is static compiles again here
        # The first call's time less the same call's once compiled (a fit of one iteration).
        out["compile_s"] = max(out["first_call_s"] - one, 0.0)
    else:
        out["compile_s"] = None
    out["fit_s"], fitted = adapter.fit(FIT_MAX_ITER, FIT_TOL)
    out["peak_rss_gib"] = peak_rss_bytes() / GIB
    out["fit_iters"] = fitted[3]
    x = np.load(spec["x_float64"], mmap_mode="r")
    if adapter.formulation is not None:
        out["form"] = adapter.formulation(x.shape[0])
    cov = spec["covariance"]
    out["ll_iters"] = mean_log_likelihood(x, *fixed[:3], cov)
    out["ll_fit"] = mean_log_likelihood(x, *fitted[:3], cov)
    return out


def child_restarts(spec):
    """``mx.fit(..., n_init=8)`` against 8 single fits with the keys ``jax.random.split(key, 8)``.

    "form" is :func:`formulation_of` the vmapped fit's chosen mixture with 8
    restarts, and of the first single fit's mixture with 1.
    """
    import jax
    import numpy as np

    dtype = {"mixtures-f32": "float32", "mixtures-f64": "float64"}[spec["impl"]]
    jax.config.update("jax_enable_x64", True)  # as MixturesAdapter: float32 data stays float32
    import mixtures as mx

    x = jax.device_put(np.load(spec["x_" + dtype]))
    family = mx.Gaussian("full", reg_covar=spec["reg_covar"])
    k, key = spec["k"], jax.random.key(spec["seed"])
    keys = jax.random.split(key, N_RESTARTS)

    def fit(key, n_init):
        return mx.fit(x, family, k, key=key, n_init=n_init, tol=FIT_TOL)

    first, _ = timed(lambda: fit(key, N_RESTARTS), jax.block_until_ready)
    vmapped_s, together = timed(lambda: fit(key, N_RESTARTS), jax.block_until_ready)
    first_single, _ = timed(lambda: fit(keys[0], 1), jax.block_until_ready)
    single_runs = [timed(lambda: fit(one, 1), jax.block_until_ready) for one in keys]
    sequential_s = sum(seconds for seconds, _ in single_runs)
    singles = [r for _, r in single_runs]
    vmapped_ll = np.asarray(together.all_log_likelihoods, np.float64)
    single_ll = np.array([float(r.log_likelihood) for r in singles])
    return {
        "vmapped_s": vmapped_s,
        "sequential_s": sequential_s,
        "compile_vmapped_s": max(first - vmapped_s, 0.0),
        "compile_single_s": max(first_single - single_runs[0][0], 0.0),
        "vmapped_iters": np.asarray(together.all_n_iter).tolist(),
        "sequential_iters": [int(r.n_iter) for r in singles],
        "vmapped_ll": vmapped_ll.tolist(),
        "sequential_ll": single_ll.tolist(),
        "max_rel_diff": float(np.max(np.abs(vmapped_ll - single_ll) / np.abs(single_ll))),
        "peak_rss_gib": peak_rss_bytes() / GIB,
        "form_vmapped": formulation_of(together.mixture, x.shape[0]),
        "form_single": formulation_of(singles[0].mixture, x.shape[0]),
    }


def child_main(spec):
    try:
        out = {"gemm": child_gemm, "em": child_em, "restarts": child_restarts}[spec["mode"]](spec)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(out))


# ---------------------------------------------------------------------------
# Parent: runs the children, derives ratios, prints and writes the results


def child_env(setting):
    """The environment for a child: XLA_FLAGS with the fusion setting appended (None: as found)."""
    env = dict(os.environ)
    if setting is None:
        return env
    kept = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(YNN_FLAG + "=")]
    if setting == "jax-default":
        flags = kept
    else:
        flags = kept + [f"{YNN_FLAG}={FUSION_SETTINGS[setting]}"]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    return env


def cpu_seconds(pid):
    """User + system CPU seconds of a running process (all its threads), or None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_child(spec, setting, timeout):
    """Runs one child; returns its JSON dict, or {"status": "failed" | "timeout" | "hung", ...}."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                                stdout=out, stderr=err, env=child_env(setting), start_new_session=True)
        started = last_change = time.monotonic()
        last_cpu = cpu_seconds(proc.pid) or 0.0
        status = None
        while proc.poll() is None:
            time.sleep(1.0)
            now = time.monotonic()
            cpu = cpu_seconds(proc.pid)
            if cpu is not None and cpu > last_cpu + 1.0:
                last_cpu, last_change = cpu, now
            if now - started > timeout:
                status = "timeout"
            elif cpu is not None and now - last_change > HANG_WINDOW_S:
                status = "hung"
            if status:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return {"status": status, "seconds": round(now - started, 1)}
        out.seek(0)
        err.seek(0)
        lines = out.read().strip().splitlines()
        if proc.returncode == 0 and lines:
            result = json.loads(lines[-1])
            result["status"] = "ok"
            return result
        tail = [line for line in err.read().strip().splitlines() if line.strip()] or ["no output"]
        return {"status": "failed", "error": tail[-1][:200]}


def measure_gemm(size, timeout):
    """GEMM rates under each fusion setting, and whether "fusion-on" compiles as JAX's default does."""
    rates = {}
    for setting in FUSION_SETTINGS:
        rates[setting] = run_child({"mode": "gemm", "measure": True, "size": size}, setting, timeout)
    default = run_child({"mode": "gemm", "measure": False}, "jax-default", timeout)
    return rates, default


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def relative_difference(value, reference):
    if value is None or reference is None or not math.isfinite(reference) or reference == 0:
        return None
    return abs(value - reference) / abs(reference) if math.isfinite(value) else math.inf


def derive(case, rows, floor_rates):
    """Adds ratios, GEMM-floor fractions and agreement to the case's rows (in place); returns the reference."""
    flops = 4.0 * case["n"] * case["k"] * stats_width(case["d"], case["covariance"])
    fastest = {}
    for r in rows:
        if r["status"] == "ok" and r["per_iter_s"] is not None:
            library = r["impl"].split("-")[0]
            best = fastest.get(library)
            if best is None or r["per_iter_s"] < best:
                fastest[library] = r["per_iter_s"]
    ok = {r["impl"]: r for r in rows if r["status"] == "ok"}
    reference = "sklearn-f64" if "sklearn-f64" in ok else ("mixtures-f64" if "mixtures-f64" in ok else None)
    for r in rows:
        if r["status"] != "ok":
            continue
        library = r["impl"].split("-")[0]
        for peer in PEERS:
            r[f"ratio_vs_{peer}"] = None if peer == library else ratio(fastest.get(peer), r["per_iter_s"])
        dtype = "float64" if r["impl"].endswith("f64") else "float32"
        rate = floor_rates.get(dtype)
        r["floor_s"] = flops / (rate * 1e9) if rate else None
        r["fraction_of_floor"] = ratio(r["floor_s"], r["per_iter_s"])
        r["peak_minus_data_gib"] = r["peak_rss_gib"] - r["data_gib"]
        r["reference"] = reference
        if reference:
            ref = ok[reference]
            r["rel_diff_iters"] = relative_difference(r["ll_iters"], ref["ll_iters"])
            r["rel_diff_fit"] = relative_difference(r["ll_fit"], ref["ll_fit"])
            limit = AGREEMENT["iters-f64" if dtype == "float64" and reference.endswith("f64") else "iters-f32"]
            fit_gap = abs(r["ll_fit"] - ref["ll_fit"])
            agree = r["rel_diff_iters"] is not None and r["rel_diff_iters"] <= limit and fit_gap <= FIT_TOL
            r["mismatch"] = not agree
    return reference


def fmt(value, spec, suffix=""):
    """``value`` formatted by ``spec`` plus ``suffix``, or a dash of the same width when it is missing."""
    width = int(re.match(r"\d*", spec).group() or 0) + len(suffix)
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float) and math.isinf(value):
        return "inf".rjust(width)
    return format(value, spec) + suffix


def describe_failure(row):
    if "error" in row:
        return f"{row['status']}: {row['error']}"
    if "seconds" in row:
        return f"{row['status']} after {row['seconds']} s"
    return row["status"]


def form_label(form):
    """The "form" column: the formulation mixtures reports, blank for the peers, "error" if it raised."""
    if form is None:
        return ""
    return "error" if form.startswith("error") else form


EM_HEADER = (f"  {'implementation':<16} {'setting':<10} {'form':<12} {'s/iter':>9} {'×sklearn':>8} {'×gmmx':>7} "
             f"{'×pomegr':>7} {'floor':>6} {'compile':>7} {'peak':>6} {'-data':>6} {'fit s':>8} {'iters':>5} "
             f"{'Δll iters':>9} {'Δll fit':>8}")


def describe_data(case):
    """The data kind and reg_covar of a case, for its heading."""
    return f"data={DATA_NAMES[case['data']]} reg_covar={case['reg_covar']:g}"


def print_em_case(case, rows, reference, iters):
    m = stats_width(case["d"], case["covariance"])
    print(f"\n{case['name']}: N={case['n']} D={case['d']} K={case['k']} covariance={case['covariance']} "
          f"{describe_data(case)} (M={m}; memory in GiB; Δll = relative difference of the mean log-likelihood "
          f"to {reference or 'nothing'})")
    print(EM_HEADER)
    for r in rows:
        label = f"  {r['impl']:<16} {r['setting']:<10}"
        if r["status"] != "ok":
            print(f"{label} {describe_failure(r)}")
            continue
        print(f"{label} {form_label(r.get('form')):<12} {fmt(r['per_iter_s'], '9.4f')} "
              f"{fmt(r['ratio_vs_sklearn'], '7.1f', '×')} {fmt(r['ratio_vs_gmmx'], '6.1f', '×')} "
              f"{fmt(r['ratio_vs_pomegranate'], '6.1f', '×')} "
              f"{fmt(r['fraction_of_floor'], '6.3f')} "
              f"{fmt(r['compile_s'], '7.2f')} {r['peak_rss_gib']:6.2f} {r['peak_minus_data_gib']:6.2f} "
              f"{r['fit_s']:8.3f} {r['fit_iters']:5d} {fmt(r.get('rel_diff_iters'), '9.1e')} "
              f"{fmt(r.get('rel_diff_fit'), '8.1e')}{'  MISMATCH' if r.get('mismatch') else ''}")
    diffs = [r for r in rows if r["status"] == "ok" and r.get("rel_diff_iters") is not None and r["impl"] != reference]
    if diffs:
        worst_iters = max(r["rel_diff_iters"] for r in diffs)
        worst_fit = max(r["rel_diff_fit"] for r in diffs)
        flagged = sorted({r["impl"] for r in diffs if r["mismatch"]})
        print(f"  max relative difference to {reference}: {worst_iters:.1e} after {iters + 1} iterations, "
              f"{worst_fit:.1e} after the whole fit; "
              + (f"MISMATCH: {', '.join(flagged)}" if flagged else "all agree"))


def print_restarts_case(case, rows):
    print(f"\n{case['name']}: N={case['n']} D={case['d']} K={case['k']} full covariance, {describe_data(case)}, "
          f"{N_RESTARTS} restarts from init='kmeans++', tol={FIT_TOL}")
    print(f"  {'implementation':<16} {'setting':<10} {'form v':<12} {'form 1':<12} {'vmapped s':>9} "
          f"{'sequential s':>12} {'seq/vmap':>8} {'compile v':>9} {'compile 1':>9} {'iters v':>7} {'iters s':>7} "
          f"{'Δll':>8}")
    for r in rows:
        label = f"  {r['impl']:<16} {r['setting']:<10}"
        if r["status"] != "ok":
            print(f"{label} {describe_failure(r)}")
            continue
        same = r["max_rel_diff"] <= (1e-9 if r["impl"].endswith("f64") else 1e-5)
        print(f"{label} {form_label(r.get('form_vmapped')):<12} {form_label(r.get('form_single')):<12} "
              f"{r['vmapped_s']:9.3f} {r['sequential_s']:12.3f} {r['sequential_s'] / r['vmapped_s']:7.2f}× "
              f"{r['compile_vmapped_s']:9.2f} {r['compile_single_s']:9.2f} {sum(r['vmapped_iters']):7d} "
              f"{sum(r['sequential_iters']):7d} {r['max_rel_diff']:8.1e}"
              + ("" if same else "  DIFFERENT FITS (restart i of n_init=8 and the single fit with key i differ)"))


def target_lines(em_results, restart_results):
    """The summary of targets: (description, value, verdict) per line, mixtures at each fusion setting.

    The targets (float32 and full covariance unless said): on (10⁶, 16, 16)
    well-conditioned data ("-wc"), ≥ 25× scikit-learn, ≥ 5× gmmx and ≥ 1/3
    of the GEMM floor, float64 ≥ 10× scikit-learn; on the hard data ≥ 7×
    scikit-learn; on (2·10⁵, 64, 32) ≥ 10× scikit-learn; on every case
    compile < 2 s and peak memory < 1 GiB above the data; 8 vmapped
    restarts ≥ 3× cheaper than 8 sequential fits, float32 and float64. A
    target whose case did not run is listed as not run.
    """
    lines = []

    def check(description, rows, value_of, goal, higher_is_better):
        for r in rows:
            value = value_of(r)
            label = f"{description} [{r['setting']}]"
            if value is None:
                lines.append((label, "n/a", "-"))
            else:
                ok = value >= goal if higher_is_better else value < goal
                lines.append((label, value, "PASS" if ok else "FAIL"))

    def rows_of(result, impl):
        return [r for r in result["rows"] if r["impl"] == impl and r["status"] == "ok"]

    by_name = {c["case"]["name"]: c for c in em_results}
    speed = [
        (TARGET_CASE + "-wc", "mixtures-f32", "sklearn", 25), (TARGET_CASE + "-wc", "mixtures-f64", "sklearn", 10),
        (TARGET_CASE + "-wc", "mixtures-f32", "gmmx", 5), (TARGET_CASE, "mixtures-f32", "sklearn", 7),
        ("200000x64x32-full", "mixtures-f32", "sklearn", 10),
    ]
    for name, impl, peer, goal in speed:
        if name not in by_name:
            lines.append((f"{name} {impl} vs {peer} (≥ {goal}×)", "not run", "-"))
        else:
            check(f"{name} {impl} vs {peer} (≥ {goal}×)", rows_of(by_name[name], impl),
                  lambda r, peer=peer: r[f"ratio_vs_{peer}"], goal, True)
    wc = by_name.get(TARGET_CASE + "-wc")
    if wc is not None:
        check(f"{TARGET_CASE}-wc mixtures-f32 fraction of the GEMM floor (≥ 1/3)", rows_of(wc, "mixtures-f32"),
              lambda r: r["fraction_of_floor"], 1 / 3, True)
    for case in em_results:
        name = case["case"]["name"]
        for impl in ("mixtures-f32", "mixtures-f64"):
            check(f"{name} {impl} compile seconds (< 2)", rows_of(case, impl), lambda r: r["compile_s"], 2.0, False)
        if case["case"]["n"] >= 10**6:
            check(f"{name} mixtures-f32 peak memory − data, GiB (< 1)", rows_of(case, "mixtures-f32"),
                  lambda r: r["peak_minus_data_gib"], 1.0, False)
    for case in restart_results:
        for impl in ("mixtures-f32", "mixtures-f64"):
            check(f"{case['case']['name']} {impl} sequential / vmapped seconds (≥ 3)",
                  rows_of(case, impl), lambda r: r["sequential_s"] / r["vmapped_s"], 3.0, True)
    return lines


def select_impls(requested):
    if requested is None:
        return list(IMPLEMENTATIONS)
    chosen = []
    for item in requested.split(","):
        matches = [i for i in IMPLEMENTATIONS if i == item or i.split("-")[0] == item]
        if not matches:
            raise SystemExit(f"--impl: {item!r} is none of {', '.join(IMPLEMENTATIONS)} (or their library names).")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="quick",
                        help="quick, full, or a comma-separated list of NxDxK-COV[-wc|-ov], digits-COV and "
                        "restarts-NxDxK[-wc|-ov] (default quick)")
    parser.add_argument("--impl", default=None,
                        help=f"comma-separated subset of {', '.join(IMPLEMENTATIONS)}; "
                        "a library name takes all of its rows")
    parser.add_argument("--iters", type=int, default=10,
                        help="EM iterations in the timed fixed-length fit (default 10)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed fixed-length fits per implementation; the fastest counts (default 2)")
    parser.add_argument("--out", default="bench_em.json", help="JSON results file (default bench_em.json)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds before a child is stopped and reported 'timeout' (default 1800)")
    parser.add_argument("--gemm-size", type=int, default=None,
                        help="matmul size for the GEMM rate (default 2048; 4096 with --cases full)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return
    if args.iters < 1 or args.repeats < 1 or args.timeout <= 0:
        parser.error("--iters and --repeats must be at least 1, --timeout positive")
    names = PRESETS.get(args.cases, args.cases.split(","))
    try:
        cases = [parse_case(name) for name in names]
    except ValueError as err:
        parser.error(str(err))
    impls = select_impls(args.impl)
    installed = {lib: importlib.util.find_spec(module) is not None for lib, module in MODULES.items()}
    gemm_size = args.gemm_size or {"full": 4096, "tiny": 1024}.get(args.cases, 2048)

    import numpy as np

    print(f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, {sys.executable}")
    print(f"XLA_FLAGS as found: {os.environ.get('XLA_FLAGS', '')!r}; settings: "
          + ", ".join(f"{s} = {YNN_FLAG}={v}" for s, v in FUSION_SETTINGS.items()))
    missing = [lib for lib in installed if not installed[lib] and any(i.startswith(lib) for i in impls)]
    if missing:
        print(f"not installed here, skipped: {', '.join(missing)} (benchmarks/README.md sets up a venv with all peers)")
    rates, default = measure_gemm(gemm_size, args.timeout)
    floor_rates = {}
    for setting, r in rates.items():
        if r["status"] == "ok":
            print(f"GEMM {gemm_size}² [{setting}]: {r['float32']:.1f} GFLOP/s float32, "
                  f"{r['float64']:.1f} GFLOP/s float64")
            for dtype in ("float32", "float64"):
                floor_rates[dtype] = max(floor_rates.get(dtype, 0.0), r[dtype])
        else:
            print(f"GEMM [{setting}]: {r['status']} {r.get('error', '')}")
    on = rates.get("fusion-on", {}).get("fingerprint")
    fusion_on_is_default = on is not None and on == default.get("fingerprint")
    print(f"fusion-on compiles a test program as JAX's default does: {'yes' if fusion_on_is_default else 'NO'} "
          f"({default.get('ynn_fusions')} YNN fusions by default, "
          f"{rates.get('fusion-on', {}).get('ynn_fusions')} with fusion-on)")
    print("floor rates (best setting): " + ", ".join(f"{d} {v:.1f} GFLOP/s" for d, v in floor_rates.items()))

    em_results, restart_results = [], []
    workdir = tempfile.mkdtemp(prefix="bench_em_")
    try:
        for case in cases:
            x, means = case_data(case)
            paths = {"x_float64": os.path.join(workdir, "x64.npy"), "x_float32": os.path.join(workdir, "x32.npy"),
                     "start": os.path.join(workdir, "start.npz")}
            np.save(paths["x_float64"], x)
            np.save(paths["x_float32"], x.astype(np.float32))
            weights, start_means, covs = make_start(x, means, case["covariance"])
            np.savez(paths["start"], weights=weights, means=start_means, covariances=covs)
            del x
            rows = []
            for impl in impls:
                library = impl.split("-")[0]
                if not installed[library]:
                    continue
                if case["kind"] == "restarts" and library != "mixtures":
                    continue
                if case["covariance"] not in SUPPORTED[library]:
                    rows.append({"impl": impl, "setting": "-", "status": f"n/a ({library} has no {case['covariance']})"})
                    continue
                if library in UNREGULARISED and case["reg_covar"] != DEFAULT_REG_COVAR:
                    status = f"n/a ({library} has no reg_covar; this case needs {case['reg_covar']:g})"
                    rows.append({"impl": impl, "setting": "-", "status": status})
                    continue
                settings = list(FUSION_SETTINGS) if library in ("mixtures", "gmmx") else [None]
                for setting in settings:
                    spec = {"mode": case["kind"], "impl": impl, "iters": args.iters, "repeats": args.repeats,
                            "covariance": case["covariance"], "reg_covar": case["reg_covar"], "k": case["k"],
                            "seed": 0, **paths}
                    print(f"  ... {case['name']} {impl} [{setting or '-'}]", file=sys.stderr, flush=True)
                    result = run_child(spec, setting, args.timeout)
                    rows.append({"impl": impl, "setting": setting or "-", **result})
            if case["kind"] == "restarts":
                print_restarts_case(case, rows)
                restart_results.append({"case": case, "rows": rows})
            else:
                reference = derive(case, rows, floor_rates)
                print_em_case(case, rows, reference, args.iters)
                em_results.append({"case": case, "rows": rows, "reference": reference})
            sys.stdout.flush()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summary = target_lines(em_results, restart_results)
    print("\nTargets (mixtures at each fusion setting; peers at their fastest):")
    for description, value, verdict in summary:
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"  {verdict:<4} {description}: {shown}" if verdict else f"  {description}")
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "xla_flags_found": os.environ.get("XLA_FLAGS", ""),
        "fusion_settings": {s: f"{YNN_FLAG}={v}" for s, v in FUSION_SETTINGS.items()},
        "fusion_on_is_jax_default": fusion_on_is_default,
        "gemm_size": gemm_size,
        "gemm_gflops": rates,
        "floor_gflops": floor_rates,
        "iters": args.iters,
        "repeats": args.repeats,
        "fit_tol": FIT_TOL,
        "cases": em_results,
        "restarts": restart_results,
        "summary": [{"target": d, "value": v, "verdict": t} for d, v, t in summary],
    }
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2, default=float)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
