"""``mixtures fit --family NAME`` and its options, learnt from the registered family classes.

Every registered family whose dataclass fields the command line can read
(numbers, strings, booleans and tuples of numbers) is offered under its
class name in kebab case ("gaussian", "von-mises-fisher"). Each field
becomes an option, ``--field-name`` (or the name in the field's
``metadata["option"]``), with the help in ``metadata["help"]`` if there is
one; the family is then built by :meth:`~mixtures.Family.from_data` from the
options given, the others left to the family.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing

from mixtures.cli.errors import CommandError

__all__ = ["add_family_options", "command_line_families", "make_family", "make_model_families"]

DEFAULT_FAMILY = "gaussian"


class _Option(typing.NamedTuple):
    flag: str  # "--reg-covar"
    field: str  # "reg_covar"
    families: tuple  # the command-line names of the families with that field


def command_line_name(cls: type) -> str:
    """The family's name on the command line: its class name in kebab case.

    Example:
      >>> import mixtures as mx
      >>> from mixtures.cli.families import command_line_name
      >>> command_line_name(mx.Gaussian), command_line_name(mx.VonMisesFisher)
      ('gaussian', 'von-mises-fisher')
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", cls.__name__).lower()


def _field_types(cls: type) -> dict | None:
    """Each init field's reader (text → value), or None if the command line cannot read one of them."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a family whose annotations do not resolve is not offered
        return None
    readers = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        reader = _reader(hints.get(f.name))
        if reader is None:
            return None
        readers[f.name] = reader
    return readers


def _reader(kind):
    if kind in (int, float, str):
        return kind
    if kind is bool:
        return _boolean
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float):
            return args[0], tuple
    return None


def _boolean(text: str) -> bool:
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise ValueError(text)
    return value


def command_line_families() -> dict:
    """The registered families the command line can configure, by command-line name, sorted.

    Example:
      >>> from mixtures.cli.families import command_line_families
      >>> [name for name in command_line_families() if name in ("gaussian", "independent", "poisson")]
      ['gaussian', 'poisson']
    """
    from mixtures._src.core.registry import registered_families

    offered = {command_line_name(cls): cls for cls in registered_families().values() if _field_types(cls) is not None}
    return dict(sorted(offered.items()))


def _options(families: dict, taken: set) -> list[_Option]:
    """One option per field name across ``families``, except those whose flag another option has."""
    options: dict[str, _Option] = {}
    for name, cls in families.items():
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            flag = "--" + f.metadata.get("option", f.name).replace("_", "-")
            if flag in taken:
                continue
            known = options.get(flag)
            options[flag] = _Option(flag, f.name, (known.families if known else ()) + (name,))
    return list(options.values())


def add_family_options(parser) -> None:
    """Adds ``--family`` and one option per configurable family field to ``parser`` (the ``fit`` command)."""
    families = command_line_families()
    parser.add_argument(
        "--family", choices=list(families), default=DEFAULT_FAMILY, help=f"component family (default {DEFAULT_FAMILY})"
    )
    group = parser.add_argument_group("family options", "each applies to the families named in its help")
    taken = set(parser._option_string_actions)
    for option in _options(families, taken):
        cls = families[option.families[0]]
        field = next(f for f in dataclasses.fields(cls) if f.name == option.field)
        help_text = field.metadata.get("help")
        if help_text is None:
            default = "" if field.default is dataclasses.MISSING else f" (default {field.default!r})"
            help_text = f"the field {field.name}{default}"
        group.add_argument(
            option.flag, dest=f"family_{option.field}", metavar=option.flag[2:].upper().replace("-", "_"),
            help=f"{', '.join(option.families)}: {help_text}",
        )


def make_family(args, data):
    """The family ``--family`` names, configured by the family options given (checked against it) and the data.

    Raises:
      CommandError: for an option the family does not have, a value it cannot read, or one the family rejects.
    """
    families = command_line_families()
    name = args.family
    cls = families[name]
    readers = _field_types(cls)
    config, given = {}, []
    for option in _options(families, set()):
        text = getattr(args, f"family_{option.field}", None)
        if text is None:
            continue
        if name not in option.families:
            raise CommandError(f"{option.flag} applies to --family {', '.join(option.families)}, not {name}.")
        config[option.field] = _read(readers[option.field], text, option.flag)
        given.append(option.flag)
    try:
        return cls.from_data(data.x, **config)
    except (TypeError, ValueError) as e:
        raise CommandError(f"{', '.join(given) or f'--family {name}'}: {e}") from None


def _read(reader, text: str, flag: str):
    if isinstance(reader, tuple):
        kind, _ = reader
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            noun = "integers" if kind is int else "numbers"
            raise CommandError(f"{flag} must be comma-separated {noun}; received {text!r}.") from None
    try:
        return reader(text)
    except ValueError:
        noun = {int: "an integer", float: "a number", str: "text"}.get(reader, "true or false")
        raise CommandError(f"{flag} must be {noun}; received {text!r}.") from None


def make_model_families(args, data) -> list:
    """One Gaussian per covariance model ``--models`` names (comma-separated, or "all"), with the other family options.

    Raises:
      CommandError: --models with another family or with --covariance, an empty, unknown or repeated name.
    """
    from mixtures._src.fitting.models import all_models, model_families

    if args.family != "gaussian":
        raise CommandError(f"--models names covariance models of --family gaussian, not {args.family}.")
    if getattr(args, "family_covariance", None) is not None:
        raise CommandError("--models and --covariance both choose the covariance; give one of them.")
    cls = command_line_families()["gaussian"]
    text = args.models.strip()
    names = all_models(cls) if text == "all" else [name.strip() for name in text.split(",")]
    if not all(names):
        raise CommandError(
            f"--models must be 'all' or comma-separated model names such as {','.join(all_models(cls)[:2])}; "
            f"received {text!r}."
        )
    try:
        model_families(cls, names)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--models: {error}") from None
    make_family(args, data)  # the other family options, checked once and named alone
    return [make_family(argparse.Namespace(**{**vars(args), "family_covariance": name}), data) for name in names]
