"""mx.register_family: what is accepted, what is refused, and the registry every front end reads."""

import dataclasses

import pytest

import mixtures as mx
from mixtures._src.core import registry

BUILT_IN = (
    mx.Bernoulli, mx.Categorical, mx.Exponential, mx.Gamma, mx.Gaussian, mx.Independent, mx.Poisson,
    mx.StudentT, mx.VonMisesFisher,
)


def test_every_built_in_family_is_registered_under_its_class_name():
    families = registry.registered_families()
    for cls in BUILT_IN:
        assert families[cls.__name__] is cls and registry.family_class(cls.__name__) is cls
    assert "Family" not in families and "ExponentialFamily" not in families and "GradientFamily" not in families


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        registry.registered_families()["Poisson"] = mx.Gaussian


def test_registering_twice_is_a_no_op():
    before = dict(registry.registered_families())
    assert mx.register_family(mx.Poisson) is mx.Poisson
    assert dict(registry.registered_families()) == before


def test_unknown_name_says_how_to_register():
    with pytest.raises(KeyError, match=r"mx.register_family\(YourClass\)"):
        registry.family_class("NoSuchFamily")


def test_a_different_class_under_a_registered_name_is_refused():
    lookalike = dataclasses.dataclass(frozen=True)(type("Poisson", (mx.Poisson,), {"__module__": __name__}))
    with pytest.raises(ValueError, match="already registered"):
        mx.register_family(lookalike)
    assert registry.family_class("Poisson") is mx.Poisson


_STUBS = {name: lambda *args: None for name in mx.Family.__abstractmethods__}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: mx.Poisson(), "must be a class"),
        (lambda: int, "subclass of mixtures.Family"),
        (lambda: mx.ExponentialFamily, "abstract"),
        (lambda: type("Unfrozen", (mx.Poisson,), {}), "frozen dataclass"),  # inherits the fields, not decorated
        (lambda: dataclasses.dataclass(type("Mutable", (mx.Family,), _STUBS)), "frozen dataclass"),
    ],
    ids=["instance", "not-a-family", "abstract", "not-a-dataclass", "not-frozen"],
)
def test_what_is_not_a_concrete_frozen_family_is_refused(make, match):
    candidate = make()
    with pytest.raises(TypeError, match=match):
        mx.register_family(candidate)
    assert all(cls is not candidate for cls in registry.registered_families().values())
