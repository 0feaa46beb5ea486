"""The registry of family classes, by class name: what ``mixtures.load`` may construct and the CLI offers.

A family class registers itself with :func:`register_family`, a class
decorator placed above ``@dataclasses.dataclass(frozen=True)``. Every
built-in family does; a user's own family does the same (or calls
``mx.register_family(MyFamily)`` once) to become savable and loadable with
``mx.save`` and ``mx.load``. Registering never runs anything from a file: a
model file only names a class, and only a registered class is constructed,
from the JSON values of its dataclass fields.

Example:
  >>> import dataclasses
  >>> from mixtures._src.core import registry
  >>> sorted(registry.registered_families())[:3]
  ['Bernoulli', 'Categorical', 'Exponential']
  >>> registry.family_class("Poisson").__name__
  'Poisson'
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Mapping

from mixtures._src.core.family import Family

__all__ = ["family_class", "register_family", "registered_families"]

_FAMILIES: dict[str, type] = {}
_VIEW = types.MappingProxyType(_FAMILIES)


def register_family(cls: type) -> type:
    """Registers a family class under its class name; usable as a class decorator.

    Registering the same class again does nothing.

    Args:
      cls: a concrete subclass of :class:`~mixtures.Family` that is a frozen
        dataclass (``@dataclasses.dataclass(frozen=True)``, applied before
        this decorator, i.e. written below it).

    Returns:
      ``cls`` itself.

    Raises:
      TypeError: if ``cls`` is not a class, not a ``Family`` subclass, still
        abstract, or not a frozen dataclass.
      ValueError: if a different class is already registered under the same
        name.

    Example:
      >>> import dataclasses, mixtures as mx
      >>> @mx.register_family
      ... @dataclasses.dataclass(frozen=True)
      ... class UnitPoisson(mx.Poisson):
      ...     pass
      >>> mx.register_family(UnitPoisson) is UnitPoisson  # again: no change
      True
      >>> mx.register_family(mx.Poisson)  # doctest: +ELLIPSIS
      <class 'mixtures._src.families.poisson.Poisson'>
    """
    if not isinstance(cls, type):
        raise TypeError(f"`cls` must be a class (a Family subclass); received {cls!r} of type {type(cls).__name__}.")
    if not issubclass(cls, Family):
        raise TypeError(f"`cls` must be a subclass of mixtures.Family; received {cls.__module__}.{cls.__qualname__}.")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(
            f"`cls`: {cls.__qualname__} is abstract (it does not implement {missing}); register a concrete family."
        )
    params = getattr(cls, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__ or not params.frozen:
        raise TypeError(
            f"`cls`: {cls.__qualname__} must be a frozen dataclass: decorate it with "
            "@dataclasses.dataclass(frozen=True) (written below @register_family, so that it applies first)."
        )
    name = cls.__name__
    known = _FAMILIES.get(name)
    if known is not None and known is not cls:
        raise ValueError(
            f"`cls`: the name {name!r} is already registered for {known.__module__}.{known.__qualname__}; "
            f"model files name families by class name, so rename {cls.__module__}.{cls.__qualname__}."
        )
    _FAMILIES[name] = cls
    return cls


def registered_families() -> Mapping[str, type]:
    """A read-only view of the registered family classes, by class name, in registration order.

    Example:
      >>> import mixtures as mx
      >>> from mixtures._src.core.registry import registered_families
      >>> registered_families()["Gaussian"] is mx.Gaussian
      True
    """
    return _VIEW


def family_class(name: str) -> type:
    """The family class registered under ``name``.

    Raises:
      KeyError: if no class is registered under that name; the message lists
        the registered names and how to register one.

    Example:
      >>> from mixtures._src.core.registry import family_class
      >>> family_class("Gamma").__name__
      'Gamma'
    """
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise KeyError(
            f"no family class is registered under the name {name!r:.100}; registered: {', '.join(_FAMILIES)}. "
            "Register yours with mx.register_family(YourClass)."
        ) from None
