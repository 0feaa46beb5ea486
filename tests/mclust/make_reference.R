# Reference values from R's mclust for the tests of mixtures' Gaussian covariance models.
#
# Run from the repository root (needs R with the mclust and jsonlite packages; on Debian:
# apt-get install -y r-cran-mclust r-cran-jsonlite):
#
#   Rscript tests/mclust/make_reference.R > tests/mclust/reference.json
#
# What it writes is described in tests/mclust/README.md. In short, for each data set
# (Old Faithful, iris, the first 5 columns of wine), K = 1..5 and each of mclust's 14
# multivariate models:
#   * the starting responsibilities z: mclust's own default start, the VVV model-based
#     hierarchical clustering cut at K classes, one-hot
#     (hclass(hc(x, "VVV", use = mclust.options("hcUse")), K), as mclustBIC calls it);
#   * me(x, model, z) — plain EM from z, no prior — with a tight log-likelihood tolerance
#     (CONTROL below, 1e-15 instead of 1e-5): log-likelihood, BIC, number of parameters,
#     iterations, return code, warnings, and the fitted parameters (pro, mean, sigma, and the scale / shape /
#     orientation of the model's eigen-decomposition where mclust reports them);
#   * the same me() with mclust's default emControl(): log-likelihood, BIC, iterations, return
#     code (these reproduce the BIC table of Mclust, which starts from the same z);
#   * Mclust(x, G = 1:5, modelNames = model): mclust's own choice of K by BIC, its
#     log-likelihood, and the BIC of every K.
# Arrays are written in Python's (row-major) layout with the component axis first:
# mean K x d, sigma K x d x d (R holds d x K and d x d x K); numbers with 17 significant
# digits (jsonlite caps its own output at 15, so numeric arrays are formatted here).

suppressPackageStartupMessages({
  library(mclust)
  library(jsonlite)
})

started <- Sys.time()

MODELS <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
            "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
KS <- 1:5
# The log-likelihood tolerance is tightened from mclust's 1e-5 (on the relative change between
# iterations, |l - l_old| / (1 + |l|)) to 1e-15, so that the fits are at the EM fixed point,
# not where mclust's default rule stops: with 1e-12 the parameters of the slowly converging
# fits (hundreds of iterations) were still 5e-5 (relative) from it; with 1e-15 mixtures'
# fits from the same z agree with them to 1e-6. Every fit stops by this rule well inside
# the cap of 100000 iterations (the most is a few thousand). The inner (M-step) tolerance
# of the models with an iterative M-step (VEI, VEE, EVE, VVE, VEV) is tightened from its
# default sqrt(eps) to 1e-13: VEE's alternation converges slowly, and with sqrt(eps) its
# fixed point was up to 2.7e-5 (relative, in the covariances) and 1.3e-7 in the
# log-likelihood short of the exact M-step's (iris, K = 2).
CONTROL <- emControl(tol = c(1e-15, 1e-13), itmax = c(100000L, .Machine$integer.max))

DATASETS <- list(
  old_faithful = list(
    path = "mixtures/data/old_faithful.csv",
    source = "Old Faithful geyser (Azzalini and Bowman 1990), as R's datasets::faithful; shipped with mixtures"
  ),
  iris = list(
    path = "tests/data/iris.csv",
    source = "Fisher's iris, the 4 measurements: written from scikit-learn's load_iris; equal to R's datasets::iris[, 1:4] (checked below)"
  ),
  wine5 = list(
    path = "tests/data/wine5.csv",
    source = "UCI wine recognition data, the first 5 of its 13 columns (alcohol, malic_acid, ash, alcalinity_of_ash, magnesium), raw (not standardised): written from scikit-learn's load_wine"
  )
)

# -- JSON helpers: numbers with 17 significant digits (an exact round trip of doubles) --

fmt <- function(x) {
  if (is.integer(x) || is.logical(x)) {
    out <- as.character(as.integer(x))
  } else {
    out <- sprintf("%.17g", x)
  }
  out[!is.finite(as.double(x))] <- "null"
  out
}

# A numeric vector, matrix or array as nested JSON arrays in row-major order (x[i, j, k]
# is json[i][j][k]); a verbatim JSON fragment for toJSON(json_verbatim = TRUE).
jarr <- function(x) {
  dims <- dim(x)
  if (is.null(dims)) dims <- length(x)
  flat <- fmt(as.vector(if (length(dims) > 1) aperm(x, rev(seq_along(dims))) else x))
  nest <- function(values, dims) {
    if (length(dims) == 1) return(paste0("[", paste(values, collapse = ","), "]"))
    size <- prod(dims[-1])
    parts <- vapply(seq_len(dims[1]), function(i) {
      nest(values[((i - 1) * size + 1):(i * size)], dims[-1])
    }, "")
    paste0("[", paste(parts, collapse = ","), "]")
  }
  structure(nest(flat, dims), class = "json")
}

jnum <- function(x) structure(if (is.null(x) || length(x) == 0) "null" else fmt(x)[1], class = "json")

# -- data ------------------------------------------------------------------------------

read_data <- function(path) {
  x <- as.matrix(read.csv(path, check.names = FALSE))
  storage.mode(x) <- "double"
  x
}

iris_csv <- read_data(DATASETS$iris$path)
stopifnot(all(dim(iris_csv) == c(150, 4)),
          all(iris_csv == as.matrix(datasets::iris[, 1:4])))
faithful_csv <- read_data(DATASETS$old_faithful$path)
stopifnot(all(dim(faithful_csv) == c(272, 2)),
          all(faithful_csv == as.matrix(datasets::faithful)))

# -- one fit ---------------------------------------------------------------------------

# Runs expr, collecting its warnings (muffled) instead of printing them.
with_warnings <- function(expr) {
  messages <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(error = conditionMessage(e)), class = "failed")),
    warning = function(w) {
      messages <<- c(messages, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  list(value = value, warnings = unique(messages))
}

variance_parts <- function(variance, K) {
  out <- list()
  sigma <- variance$sigma
  if (!is.null(sigma)) {
    if (length(dim(sigma)) == 2) sigma <- array(sigma, c(dim(sigma), 1))
    out$sigma <- jarr(aperm(sigma, c(3, 1, 2)))
  }
  if (!is.null(variance$scale)) out$scale <- jarr(as.vector(variance$scale))
  if (!is.null(variance$shape)) {
    shape <- variance$shape  # d (shared) or d x K
    out$shape <- jarr(if (is.matrix(shape)) t(shape) else as.vector(shape))
  }
  if (!is.null(variance$orientation)) {
    o <- variance$orientation  # d x d (shared) or d x d x K
    out$orientation <- jarr(if (length(dim(o)) == 3) aperm(o, c(3, 1, 2)) else o)
  }
  out
}

fit_record <- function(x, model, z, K) {
  n <- nrow(x)
  d <- ncol(x)
  npar <- nMclustParams(model, d = d, G = K)
  t0 <- proc.time()[["elapsed"]]
  run <- with_warnings(me(x, modelName = model, z = z, control = CONTROL, warn = TRUE))
  seconds <- proc.time()[["elapsed"]] - t0
  fit <- run$value
  rec <- list(model = model, K = K, n = n, d = d, npar = npar)
  if (inherits(fit, "failed")) {
    rec$loglik <- jnum(NA)
    rec$bic <- jnum(NA)
    rec$error <- fit$error
    rec$warnings <- I(run$warnings)
    return(rec)
  }
  ll <- fit$loglik
  info <- attr(fit, "info")
  rec$loglik <- jnum(ll)
  rec$bic <- jnum(if (is.na(ll)) NA else bic(model, ll, n = n, d = d, G = K))
  # info: (iterations, last relative change), named differently by different models;
  # the models with an iterative M-step add the inner loop's as attr(info, "inner").
  rec$iterations <- if (is.null(info)) NA else abs(as.integer(info[[1]]))
  rec$last_relative_change <- jnum(if (is.null(info)) NA else info[[2]])
  inner <- attr(info, "inner")
  if (!is.null(inner)) {
    rec$inner_iterations <- abs(as.integer(inner[[1]]))
    rec$inner_last_change <- jnum(inner[[2]])
  }
  rec$return_code <- attr(fit, "returnCode")
  rec$warning <- if (is.null(attr(fit, "WARNING"))) NA else attr(fit, "WARNING")
  rec$warnings <- I(run$warnings)
  rec$seconds <- round(seconds, 3)
  if (!is.na(ll)) {
    p <- fit$parameters
    rec$pro <- jarr(as.vector(p$pro))
    rec$mean <- jarr(t(matrix(p$mean, d, K)))
    rec <- c(rec, variance_parts(p$variance, K))
  }
  # The same start with mclust's default control (relative log-likelihood change 1e-5).
  dflt <- with_warnings(me(x, modelName = model, z = z, control = emControl(), warn = TRUE))$value
  rec$default_control <- if (inherits(dflt, "failed")) list(error = dflt$error) else list(
    loglik = jnum(dflt$loglik),
    bic = jnum(if (is.na(dflt$loglik)) NA else bic(model, dflt$loglik, n = n, d = d, G = K)),
    iterations = abs(as.integer(attr(dflt, "info")[[1]])),
    return_code = attr(dflt, "returnCode")
  )
  rec
}

mclust_record <- function(x, model) {
  run <- with_warnings(Mclust(x, G = KS, modelNames = model, verbose = FALSE))
  m <- run$value
  if (inherits(m, "failed") || is.null(m)) {
    return(list(model = model, G = NA, loglik = jnum(NA), bic = jnum(NA),
                error = if (is.null(m)) "Mclust returned NULL" else m$error,
                warnings = I(run$warnings)))
  }
  table <- m$BIC[, model]
  list(
    model = model,
    G = m$G,
    loglik = jnum(m$loglik),
    bic = jnum(m$bic),
    npar = nMclustParams(model, d = ncol(x), G = m$G),
    bic_by_K = jarr(as.vector(table)),
    return_codes_by_K = jarr(as.integer(attr(m$BIC, "returnCodes")[, model])),
    warnings = I(run$warnings)
  )
}

# -- everything ------------------------------------------------------------------------

datasets_out <- list()
for (name in names(DATASETS)) {
  spec <- DATASETS[[name]]
  x <- read_data(spec$path)
  n <- nrow(x)
  d <- ncol(x)
  # Mclust's default start: hc's own default is use = "VARS", but mclustBIC (and so Mclust)
  # calls it with use = mclust.options("hcUse"), "SVD" (mclust >= 5.4).
  hcp <- hc(x, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
  classes <- hclass(hcp, KS)
  z_out <- list()
  fits <- list()
  for (K in KS) {
    z <- unmap(classes[, K], groups = 1:K)
    stopifnot(ncol(z) == K, all(colSums(z) > 0))
    z_out[[as.character(K)]] <- jarr(matrix(as.integer(z), n, K))
    for (model in MODELS) {
      message(sprintf("%s K=%d %s", name, K, model))
      fits[[length(fits) + 1]] <- fit_record(x, model, z, K)
    }
  }
  datasets_out[[name]] <- list(
    path = spec$path,
    source = spec$source,
    n = n,
    d = d,
    columns = I(colnames(x)),
    z = z_out,
    fits = fits,
    mclust = lapply(setNames(MODELS, MODELS), function(model) mclust_record(x, model))
  )
}

control_json <- function(control) list(
  eps = jnum(control$eps),
  tol = jarr(control$tol),
  itmax = jarr(as.integer(control$itmax)),
  equalPro = control$equalPro
)

out <- list(
  provenance = list(
    mclust_version = as.character(packageVersion("mclust")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    R_version = R.version.string,
    platform = R.version$platform,
    date = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"),
    command = "Rscript tests/mclust/make_reference.R > tests/mclust/reference.json",
    hc_model = mclust.options("hcModelName"),
    hc_use = mclust.options("hcUse"),
    generation_seconds = round(as.numeric(difftime(Sys.time(), started, units = "secs")), 1)
  ),
  conventions = list(
    loglik = "total log-likelihood sum_n log p(x_n) (mixtures reports the mean per row)",
    bic = "mclust's: 2 loglik - npar log(n), higher is better (mixtures' bic is -2 loglik + npar log(n), lower is better)",
    npar = "nMclustParams(model, d, K): K-1 weights + K d means + the covariance parameters",
    layout = "row-major nested arrays, component axis first: pro K, mean K x d, sigma K x d x d, scale/shape/orientation as mclust names them (shape K x d when per component, orientation K x d x d when per component)",
    z = "one-hot N x K starting responsibilities: hclass(hc(x, modelName = 'VVV', use = 'SVD'), K), mclust's default start (mclustBIC's call; hc's own default use is 'VARS')",
    null = "NA in R: a fit mclust refused (singular covariance, a vanishing mixing proportion); see return_code and warning"
  ),
  control = control_json(CONTROL),
  default_control = control_json(emControl()),
  models = I(MODELS),
  Ks = I(KS),
  datasets = datasets_out
)
out$provenance$generation_seconds <- round(as.numeric(difftime(Sys.time(), started, units = "secs")), 1)

cat(toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, na = "null", null = "null", digits = NA))
cat("\n")
