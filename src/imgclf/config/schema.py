"""How a setting is declared, and the one validator that reads the declarations.

Every field of a section of :class:`imgclf.config.settings.Config` is made by :func:`setting`: its
default, a one-line help, its unit, and its constraint (a range, a step, choices, a list's length, the
form of its entries). :func:`check` validates a value against that declaration and raises one message
format: ``KEY must be EXPECTED; got VALUE``, with a hint that points at ``imgclf config --explain``.
``imgclf config --explain``, docs/configuration.md and the error messages all read :func:`describe`.

The convention for 0 and "": a sentinel 0 means "no limit" (a cap or a time limit) or "auto" (a size
the tool picks: threads, streams, a resolution taken from another key); a 0 outside a key's range is
accepted only where its declaration says what it means (``zero``). A string "" means "not set": the
tool derives the value from another key, named in the key's help.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, get_args, get_origin

from ..util.errors import ConfigError

HINT = "see every key, its default and what it accepts: `imgclf config --explain`"


@dataclass(frozen=True)
class Spec:
    """A setting's declaration beside its type and default (in the dataclass field's metadata)."""

    help: str  # one line: what the setting does
    unit: str = ""  # s, ms, MB, px, ... ("" for a dimensionless value)
    ge: float | None = None  # value >= ge (for a list: each item)
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    lt: float | None = None  # value < lt
    multiple_of: int = 0  # value a multiple of this
    zero: str = ""  # what 0 means where the range excludes it ("no limit", "auto: ...")
    choices: Callable[[], list[str]] | None = None  # the valid names (a registry's), asked when checked
    form: str = ""  # "featurizer": NAME@RESOLUTION entries; "featurizers": such names joined by "+"
    nonempty: bool = False  # a list with at least one item
    length: int = 0  # a list of exactly this many items (0: any)
    not_all_zero: bool = False  # a list of numbers whose sum is > 0
    shown_default: str = ""  # how the docs show a default computed at run time


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            **spec: Any) -> Any:
    """A dataclass field with its :class:`Spec`; a list default is copied per instance."""
    meta = {"spec": Spec(help=help, **spec)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def spec_of(f: dataclasses.Field) -> Spec:
    """The declaration of a section's field (every field has one)."""
    return f.metadata["spec"]


def fields_of(section: type) -> list[tuple[dataclasses.Field, Any]]:
    """``(field, type)`` of every setting of a section class, in declaration order."""
    hints = typing.get_type_hints(section)
    return [(f, hints[f.name]) for f in dataclasses.fields(section)]


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds(s: Spec) -> str:
    """The range in words: ``"from 1 to 65535"``, ``"in (0, 1]"``, ``"> 0"`` ("" when unbounded)."""
    if s.ge is not None and s.le is not None:
        return f"from {_num(s.ge)} to {_num(s.le)}"
    if (s.ge is not None or s.gt is not None) and (s.le is not None or s.lt is not None):
        lo = f"[{_num(s.ge)}" if s.ge is not None else f"({_num(s.gt)}"
        hi = f"{_num(s.le)}]" if s.le is not None else f"{_num(s.lt)})"
        return f"in {lo}, {hi}"
    return next((f"{op} {_num(b)}" for op, b in ((">=", s.ge), (">", s.gt), ("<=", s.le), ("<", s.lt)) if b is not None), "")


_KINDS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings")}


def _kind(tp: Any, plural: bool = False) -> str:
    return _KINDS[tp][plural] if tp in _KINDS else str(tp)


def describe(tp: Any, s: Spec) -> str:
    """What a setting accepts, in words: ``"an integer from 1 to 65535"``, ``"0 (no limit) or a number > 0"``."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if s.choices is not None:
        return "one of " + ", ".join(repr(a) for a in s.choices())
    if origin is list:
        inner = get_args(tp)[0]
        head = f"a list of {s.length} " if s.length else "a non-empty list of " if s.nonempty else "a list of "
        if s.form:
            names = "NAME@RESOLUTION names" + (' (or several joined by "+")' if s.form == "featurizers" else "")
            text = f"{head}{names}, RESOLUTION a multiple of 32 from 32 to 896"
        else:
            rule = _bounds(s)
            text = head + _kind(inner, plural=True) + (f", each {rule}" if rule else "")
        text += ", not all 0" if s.not_all_zero else ""
        return text + (f", [] = {s.zero}" if s.zero else "")
    text = _kind(tp)
    if s.multiple_of:
        text = f"a multiple of {s.multiple_of}"
    rule = _bounds(s)
    text += f" {rule}" if rule else ""
    if s.zero:
        text = f"0 ({s.zero}) or {text}" if tp is not str else f'{text}, "" = {s.zero}'
    return text


def _fails(tp: Any, s: Spec, value: Any) -> bool:
    """Whether an already typed ``value`` breaks the declaration (not its type: :func:`coerce` checked that)."""
    if s.choices is not None:
        return value not in s.choices()
    if get_origin(tp) is list:
        if (s.nonempty and not value) or (s.length and value and len(value) != s.length):
            return True
        if s.not_all_zero and value and sum(value) <= 0:
            return True
        if s.form:
            return any(not featurizer_ok(part) for v in value for part in (str(v).split("+") if s.form == "featurizers" else [str(v)]))
        return any(_out_of_range(s, v) for v in value)
    if tp in (int, float):
        if value == 0 and s.zero:
            return False
        return _out_of_range(s, value)
    return False


def _out_of_range(s: Spec, v: float) -> bool:
    if isinstance(v, float) and not math.isfinite(v):
        return True
    return ((s.ge is not None and v < s.ge) or (s.gt is not None and v <= s.gt) or (s.le is not None and v > s.le)
            or (s.lt is not None and v >= s.lt) or bool(s.multiple_of and v % s.multiple_of))


def featurizer_ok(text: str) -> bool:
    """Whether ``text`` is a ``NAME@RESOLUTION`` featurizer name with a resolution that is a multiple of 32 from 32 to 896."""
    name, _, res = text.partition("@")
    return bool(name) and res.isdigit() and int(res) % 32 == 0 and 32 <= int(res) <= 896


def coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` as the type ``tp`` of the setting ``key``; ConfigError naming both otherwise (an int is a float, never a bool)."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            inner = get_args(tp)[0]
            return [coerce(f"{key}[{i}]", inner, v) for i, v in enumerate(value)]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key} must be {describe(tp, Spec(help=''))}; got {value!r}", hint=HINT)


def check(key: str, tp: Any, s: Spec, value: Any) -> Any:
    """``value`` typed (:func:`coerce`), or ConfigError ``KEY must be EXPECTED; got VALUE`` where it breaks the
    declaration of ``key``."""
    value = coerce(key, tp, value)
    if _fails(tp, s, value):
        unit = f" (in {s.unit})" if s.unit and get_origin(tp) is not list else ""
        raise ConfigError(f"{key} must be {describe(tp, s)}{unit}; got {value!r}", hint=HINT)
    return value


def check_section(name: str, obj: Any) -> None:
    """Every setting of one section object (e.g. a ``ServeConfig`` built in code) against its type and declaration."""
    for f, tp in fields_of(type(obj)):
        check(f"{name}.{f.name}", tp, spec_of(f), getattr(obj, f.name))


def describe_value(value: Any) -> str:
    """A value as TOML writes it (the default column of the reference)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(map(describe_value, value)) + "]"
    return _num(value)
