"""How a setting's text becomes a typed value, before :mod:`imgclf.config.settings` applies it.

A TOML/JSON ``--config`` file read into ``{section: {key: value}}``, a ``--set section.key=value``
item split and parsed as TOML, a value checked and converted to a field's declared type (``Literal``
choices, lists, bool/int/float/str) with an error that names the key and what it accepts, and
``NAME@RESOLUTION`` featurizer names. Nothing here knows the sections: ``config.py`` holds them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomllib

from ..util.errors import ConfigError


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` as the type ``tp`` of the setting ``key``; ConfigError naming both otherwise (an int is a float, never a bool)."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key} must be {_describe(tp)}; got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be {_describe(tp)}; got {value!r}")
        inner = get_args(tp)[0]
        return [coerce(f"{key}[{i}]", inner, v) for i, v in enumerate(value)]
    if tp is bool:
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
    raise ConfigError(f"{key} must be {_describe(tp)}; got {value!r}")


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` (value in TOML syntax; bare words are strings)."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value; got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"--set key must look like section.key (e.g. model.resolution); got {key!r}")
    sec, k = key.split(".")
    return sec, k, _parse_value(raw.strip())


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """The ``{section: {key: value}}`` tables of a TOML file (JSON for a ``.json`` name)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist", hint="give the path of a TOML file (see `imgclf config`)")
    text = p.read_text(encoding="utf-8")
    try:
        return json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {p} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None


def parse_featurizer(text: str, key: str = "model.featurizers") -> tuple[str, int]:
    """``("efficientnet_lite2", 320)`` from ``"efficientnet_lite2@320"``; ConfigError naming ``key`` otherwise."""
    name, _, res = str(text).partition("@")
    if not name or not res.isdigit() or int(res) % 32 or not 32 <= int(res) <= 896:
        raise ConfigError(f"{key} entries must look like NAME@RESOLUTION with a resolution that is a multiple of 32 from 32 "
                          f"to 896 (e.g. efficientnet_lite2@320); got {text!r}")
    return name, int(res)
