"""The one option parser: every method's options are a typed dataclass with named presets.

A method declares its options once (:class:`splice.core.method.Method`):

- ``Options``: a dataclass whose fields are the options, with types and the defaults of the
  method's ``paper`` preset (a field's ``metadata={"help": ...}`` is shown by ``splice methods``);
  cross-field checks live in its ``__post_init__`` and raise ``ValueError`` (or ``ConfigError``);
- ``presets``: preset name -> the fields it changes (``{"paper": {}, "smoke": {"steps": 8}}``).

Everything the user types goes through this module, whichever command it came from:

- :func:`parse_assignments` reads ``--method-args`` items, ``k=v`` or ``method.k=v``;
- :func:`assign` hands them to the selected methods (``k=v`` to every method with option
  ``k``; ``method.k=v`` to that method only, and it wins), refusing unknown names with "did you mean";
- :func:`resolve` builds a method's options for a preset: defaults < preset < overrides, each value
  typed by :func:`coerce` (int, float, bool, str, ``X | None``, ``Literal`` choices, tuples).

Every problem is one :class:`~splice.core.errors.ConfigError` line naming the option, e.g.
``strotss.iters_per_scale: 'abc' is not an integer``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from splice.core.errors import ConfigError, near_names

#: The preset names of the suite. A method defines ``paper`` and ``smoke`` and may define the
#: others; a preset a method does not define runs the method's ``paper`` settings (recorded).
PRESETS: dict[str, str] = {
    "paper": "the published settings (for Splice: 2,000 steps, ViT-B/8, native resolution)",
    "paper-10k": "Splice's public configuration: 10,000 steps; other methods: paper",
    "fast": "Splice in 1,000 bf16 steps (not faithful); other methods: paper",
    "smoke": "seconds on a CPU, for tests and pipeline checks: the outputs mean nothing",
}
FALLBACK_PRESET = "paper"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "null", "~"}


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none."""


# -- presets ----------------------------------------------------------------------------------------
def check_preset(name: str, extra: Iterable[str] = (), option: str = "--preset") -> str:
    """``name`` when it is a preset of the suite (or one of ``extra``, presets of the selected methods);
    a one-line error naming the valid ones otherwise."""
    valid = list(dict.fromkeys([*PRESETS, *extra]))
    if name in valid:
        return name
    near = near_names(name, valid)
    hint = f"did you mean {near[0]}? " if near else ""
    raise ConfigError(f"{option} {name!r} is not a preset; {hint}choose from {', '.join(valid)}")


def resolve_preset(name: str, presets: Iterable[str], option: str = "--preset") -> str:
    """The preset a method with ``presets`` runs for ``name``: its own of that name; for a suite preset it
    lacks, its ``paper``; anything else is an error."""
    own = list(presets)
    if name in own:
        return name
    check_preset(name, own, option)
    return FALLBACK_PRESET


# -- typing of one value ----------------------------------------------------------------------------
def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args:
            rest = [a for a in args if a is not type(None)]
            return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return tp, False


def type_name(tp: Any) -> str:
    """How a type is shown to users: ``int``, ``float | None``, ``one of a, b``, ``4 floats``."""
    inner, optional = _unwrap_optional(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is typing.Literal:
        text = "one of " + ", ".join(str(a) for a in args)
    elif origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            names = {type_name(a) for a in args}
            text = (
                f"{len(args)} {names.pop()}s" if len(names) == 1 else "(" + ", ".join(type_name(a) for a in args) + ")"
            )
        else:
            elem = type_name(args[0]) if args else "value"
            text = f"list of {elem}s"
    elif inner is Path:
        text = "path"
    else:
        text = getattr(inner, "__name__", str(inner))
    return f"{text} | None" if optional else text


def _what(tp: Any) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text",
            "path": "a path"}.get(type_name(tp), type_name(tp))  # fmt: skip


def _split_items(text: str) -> list[str]:
    text = text.strip()
    if text[:1] in "[(" and text[-1:] in "])":
        text = text[1:-1]
    return [t.strip().strip("'\"") for t in text.split(",") if t.strip()]


def coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` (text from the command line, or a typed value) as type ``tp``; ``name`` labels errors."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise ConfigError(f"{name}: a value is needed ({_what(tp)})")
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    bad = ConfigError(f"{name}: {value!r} is not {_what(inner)}")
    if origin is typing.Literal:
        for choice in args:
            if value == choice or str(value) == str(choice):
                return choice
        near = near_names(value, args)
        hint = f"did you mean {near[0]}? " if near else ""
        raise ConfigError(f"{name}: {value!r} is not a choice; {hint}use one of {', '.join(str(a) for a in args)}")
    if origin in (tuple, list):
        items = _split_items(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"{name}: {value!r} needs {len(args)} comma-separated values, not {len(items)}")
            typed = [coerce(v, a, name) for v, a in zip(items, args)]
        else:
            elem = args[0] if args else str
            typed = [coerce(v, elem, name) for v in items]
        return tuple(typed) if origin is tuple else typed
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad
    if inner is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip().replace("_", ""))
        except ValueError:
            raise bad from None
    if inner is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise bad from None
    if inner is str:
        if isinstance(value, (dict, list, tuple)):
            raise bad
        return str(value)
    if inner is Path:
        return str(Path(str(value)).expanduser())
    if typing.get_origin(inner) in (typing.Union, types.UnionType):  # e.g. int | str: first that fits
        for alt in typing.get_args(inner):
            try:
                return coerce(value, alt, name)
            except ConfigError:
                continue
        raise bad
    return value


# -- a method's options --------------------------------------------------------------------------------
def option_types(options_type: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of an options dataclass (fields whose metadata says
    ``"option": False`` are bookkeeping, not options)."""
    hints = typing.get_type_hints(options_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_type) if f.metadata.get("option", True)}


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    near = near_names(key, known, n=2) or [k for k in known if k.startswith(key) or key in k][:2]
    if near:
        return f"did you mean {' or '.join(near)}?"
    return f"options: {', '.join(known)}" if known else "it takes no options"


def preset_overrides(presets: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The fields a preset sets (a preset is a dict of overrides, or an options instance)."""
    values = presets.get(preset, {})
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    return dict(values)


def resolve(options_type: type, presets: Mapping[str, Any], preset: str, overrides: Mapping[str, Any] | None,
            method: str) -> Any:  # fmt: skip
    """The options instance of ``method`` for ``preset``: defaults < preset < ``overrides`` (typed here).

    ``preset`` must be a preset of the suite (:data:`PRESETS`); one the method lacks runs its ``paper``.
    """
    own = resolve_preset(preset, presets)
    types_ = option_types(options_type)
    values: dict[str, Any] = {}
    for key, value in preset_overrides(presets, own).items():
        if key not in types_:  # a mistake in the method's own preset table
            raise ConfigError(f"{method}: preset {own!r} sets unknown option {key!r}")
        values[key] = coerce(value, types_[key], f"{method}.{key}")
    for key, value in (overrides or {}).items():
        if key not in types_:
            raise ConfigError(f"{method}: unknown option {key!r}; {_did_you_mean(key, types_)}")
        values[key] = coerce(value, types_[key], f"{method}.{key}")
    try:
        return options_type(**values)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(f"{method}") else f"{method}: {msg}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{method}: {' '.join(str(e).split())}") from None


def typed(options_type: type, overrides: Mapping[str, Any] | None, method: str) -> dict[str, Any]:
    """Only the given ``overrides``, typed (what a record stores as the user's ``--method-args``)."""
    types_ = option_types(options_type)
    out = {}
    for key, value in (overrides or {}).items():
        if key not in types_:
            raise ConfigError(f"{method}: unknown option {key!r}; {_did_you_mean(key, types_)}")
        out[key] = coerce(value, types_[key], f"{method}.{key}")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def to_dict(options: Any) -> dict[str, Any]:
    """An options instance as a JSON-able dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}


def describe(options_type: type, presets: Mapping[str, Any], method: str) -> list[dict[str, Any]]:
    """Each option: name, type, help and its value in every preset of the suite (``splice methods NAME --json``)."""
    types_ = option_types(options_type)
    names = list(dict.fromkeys([*PRESETS, *presets]))
    per_preset = {p: to_dict(resolve(options_type, presets, p, None, method)) for p in names}
    out = []
    for f in dataclasses.fields(options_type):
        if f.name not in types_:
            continue
        out.append({
            "name": f.name,
            "type": type_name(types_[f.name]),
            "help": f.metadata.get("help", ""),
            "presets": {p: per_preset[p][f.name] for p in names},
        })  # fmt: skip
    return out


# -- --method-args ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """One ``--method-args`` item: ``method.key=value`` (``method`` None for ``key=value``)."""

    method: str | None
    key: str
    value: str
    text: str


def parse_assignments(items: Iterable[str], method_names: Iterable[str], option: str = "--method-args"
                      ) -> list[Assignment]:  # fmt: skip
    """Split ``k=v`` / ``method.k=v`` items; ``method`` must be one of ``method_names`` (registered)."""
    names = set(method_names)
    out = []
    for item in items:
        key, eq, value = str(item).partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"{option} {item!r} is not key=value; write e.g. {option} steps=100 or splice.steps=100")
        head, dot, tail = key.rpartition(".")
        if dot and head in names:
            if not tail:
                raise ConfigError(f"{option} {item!r}: no option name after {head}.")
            out.append(Assignment(head, tail, value, str(item)))
        elif dot:
            near = near_names(head, sorted(names))
            hint = f"did you mean {near[0]}.{tail}? " if near else ""
            raise ConfigError(f"{option} {item!r}: {head!r} is not a method; {hint}see `splice methods`")
        else:
            out.append(Assignment(None, key, value, str(item)))
    return out


def assign(assignments: Iterable[Assignment], option_names: Mapping[str, Iterable[str]],
           option: str = "--method-args") -> dict[str, dict[str, str]]:  # fmt: skip
    """Overrides per selected method (``option_names``: method -> its option names).

    ``k=v`` goes to every selected method that has option ``k`` (an error when none has it);
    ``method.k=v`` to that method (an error when it is not selected or has no option ``k``), and
    wins over ``k=v``. Values stay text here: :func:`resolve` types them.
    """
    known = {m: set(names) for m, names in option_names.items()}
    plain: dict[str, dict[str, str]] = {m: {} for m in known}
    qualified: dict[str, dict[str, str]] = {m: {} for m in known}
    for a in assignments:
        if a.method is not None:
            if a.method not in known:
                raise ConfigError(f"{option} {a.text!r}: {a.method} is not among the selected methods "
                                  f"({', '.join(known) or 'none'})")  # fmt: skip
            if a.key not in known[a.method]:
                raise ConfigError(f"{option} {a.text!r}: {a.method} has no option {a.key!r}; "
                                  f"{_did_you_mean(a.key, known[a.method])}")  # fmt: skip
            qualified[a.method][a.key] = a.value
            continue
        takers = [m for m, names in known.items() if a.key in names]
        if not takers:
            everything = set().union(*known.values()) if known else set()
            raise ConfigError(f"{option} {a.text!r}: no selected method ({', '.join(known) or 'none'}) has an option "
                              f"{a.key!r}; {_did_you_mean(a.key, everything)}")  # fmt: skip
        for m in takers:
            plain[m][a.key] = a.value
    return {m: {**plain[m], **qualified[m]} for m in known}
