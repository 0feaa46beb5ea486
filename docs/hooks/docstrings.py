"""Griffe extension: reads the library's docstrings as Sphinx's Napoleon would.

The docstrings follow the Google style as Napoleon (Sphinx) reads it, which
differs from griffe's Google parser in two places, both rewritten here before
a docstring is parsed:

* an ``Example:`` section (Napoleon's alias of ``Examples:``) is renamed
  ``Examples:``, so its ``>>>`` lines render as code instead of an admonition;
* a Sphinx cross-reference role (``:class:`~mixtures.Mixture```,
  ``:meth:`bic```) becomes an optional mkdocs-autorefs reference: a link when
  the target is documented on the site, plain code otherwise (``optional``
  keeps a target that has no page, such as a helper left out of the API
  reference, from failing ``mkdocs build --strict``). A name without its
  module is resolved in the scope of the object whose docstring holds it,
  then in the enclosing class and module; ``~`` shows only the last part.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj):`(?P<text>[^`]+)`")
_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", flags=re.MULTILINE)


def _target(obj: griffe.Object, name: str) -> str:
    if name.split(".", 1)[0] == obj.package.name:
        return name
    head = name.split(".", 1)[0]
    scope = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        if head in scope.members:
            return f"{scope.path}.{name}"
        scope = scope.parent
    return name


def _role(obj: griffe.Object, match: re.Match) -> str:
    text = match["text"].strip()
    name = text.lstrip("~!")
    title = name.rsplit(".", 1)[-1] if text.startswith("~") else name
    return f'<autoref identifier="{_target(obj, name)}" optional><code>{title}</code></autoref>'


class NapoleonDocstrings(griffe.Extension):
    """Renames ``Example:`` sections and rewrites Sphinx roles in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = _EXAMPLE.sub(r"\g<indent>Examples:", obj.docstring.value)
        obj.docstring.value = _ROLE.sub(lambda m: _role(obj, m), text)
