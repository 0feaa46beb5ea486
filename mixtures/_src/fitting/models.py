"""Covariance models by name: ``select(x, mx.Gaussian, models=[...] or "all")`` turned into Gaussian families.

mclust names its Gaussian covariance models by three letters (volume, shape,
orientation; E equal across components, V varying, I the identity): "EII" …
"VVV", listed in ``Gaussian.MODELS``; "all" stands for those fourteen.
"""

from __future__ import annotations

from collections.abc import Iterable

from mixtures._src.core.family import Family
from mixtures._src.families.gaussian.family import Gaussian

__all__ = ["accepted_models", "all_models", "model_families", "model_name"]

# Names the Gaussian accepts besides its mclust models; listed in error messages.
_ALIASES = ("spherical", "diag", "tied", "full", "identity")


def all_models(cls: type = Gaussian) -> tuple[str, ...]:
    """The covariance models ``models="all"`` stands for: ``cls.MODELS``.

    Example:
      >>> from mixtures._src.fitting.models import all_models
      >>> all_models()[:3], len(all_models())
      (('EII', 'VII', 'EEI'), 14)
    """
    return tuple(cls.MODELS)


def accepted_models(cls: type = Gaussian) -> tuple[str, ...]:
    """The names to list when a model name is refused: :func:`all_models`, then the other names the Gaussian takes."""
    everything = all_models(cls)
    return everything + tuple(a for a in _ALIASES if a not in everything)


def model_name(family: Family) -> str | None:
    """A Gaussian family's covariance model name (``family.covariance``); None for other families.

    Example:
      >>> import mixtures as mx
      >>> from mixtures._src.fitting.models import model_name
      >>> model_name(mx.Gaussian(covariance="diag")), model_name(mx.Poisson())
      ('diag', None)
    """
    return family.covariance if isinstance(family, Gaussian) else None


def model_families(family, models) -> tuple[Family, ...]:
    """One ``family(covariance=m)`` per model name m of ``models`` (a list of names, or "all").

    Args:
      family: the class :class:`~mixtures.Gaussian` (or a subclass).
      models: "all", or a non-empty iterable of distinct names the Gaussian
        accepts as ``covariance``.

    Returns:
      The families, in the order of ``models`` (of :func:`all_models` for "all").

    Raises:
      TypeError: ``family`` is not the Gaussian class, or ``models`` is not
        "all" or an iterable of strings.
      ValueError: ``models`` is empty, names a model the Gaussian does not
        accept, or names one model twice.

    Example:
      >>> import mixtures as mx
      >>> from mixtures._src.fitting.models import model_families
      >>> model_families(mx.Gaussian, ["diag", "full"]) == (mx.Gaussian("diag"), mx.Gaussian("full"))
      True
    """
    if not (isinstance(family, type) and issubclass(family, Gaussian)):
        raise TypeError(
            "`models` names covariance models of mx.Gaussian, so `family` must be the class mx.Gaussian "
            f"(as in select(x, mx.Gaussian, models=\"all\", ...)); received family={family!r}. "
            "To compare families of your own configuration, pass them as a list without `models`."
        )
    everything = all_models(family)
    if isinstance(models, str) and models == "all":
        names = everything
    elif isinstance(models, (str, bytes)) or not isinstance(models, Iterable):
        raise TypeError(
            f"`models` must be \"all\" or a list of covariance model names such as {list(everything[:2])!r}; "
            f"received {models!r}" + (f" (for one model, [{models!r}])." if isinstance(models, str) else ".")
        )
    else:
        names = tuple(models)
        if not names:
            raise ValueError("`models` must name at least one covariance model (or be \"all\"); received none.")
    families, seen = [], []  # seen: the mclust names of families, in order
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"`models[{i}]` must be a covariance model name (a string) such as {everything[0]!r}; "
                            f"received {name!r}.")
        try:
            built = family(covariance=name)
        except (TypeError, ValueError):
            raise ValueError(
                f"`models[{i}]` must be a covariance model mx.Gaussian accepts, one of "
                f"{', '.join(accepted_models(family))}; received {name!r}."
            ) from None
        if built.model in seen:  # the mclust name: "full" and "VVV" are one model
            first = seen.index(built.model)
            same = f"{name!r} twice" if names[first] == name else f"one model twice, as {names[first]!r} and {name!r}"
            raise ValueError(f"`models` names {same} (at {first} and {i}); give each once.")
        families.append(built)
        seen.append(built.model)
    return tuple(families)
