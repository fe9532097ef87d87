"""How a setting's text becomes a typed value, before :mod:`imgclf.config.settings` applies it.

A TOML/JSON ``--config`` file read into ``{section: {key: value}}``, a ``--set section.key=value``
item split and parsed as TOML, and ``NAME@RESOLUTION`` featurizer names. Values are checked against
their declaration by :mod:`imgclf.config.schema`. Nothing here knows the sections: ``settings.py`` holds them.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from ..util.errors import ConfigError
from .schema import HINT, featurizer_ok


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` (value in TOML syntax; bare words are strings)."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value; got {item!r}", hint=HINT)
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise ConfigError(f"--set key must look like section.key (e.g. model.resolution); got {key!r}", hint=HINT)
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
        raise ConfigError(f"config file {p} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}",
                          hint="fix the line named; `imgclf config > my.toml` writes a valid file to start from") from None


def parse_featurizer(text: str, key: str = "model.featurizers") -> tuple[str, int]:
    """``("efficientnet_lite2", 320)`` from ``"efficientnet_lite2@320"``; ConfigError naming ``key`` otherwise."""
    if not featurizer_ok(str(text)):
        raise ConfigError(f"{key} entries must look like NAME@RESOLUTION with a resolution that is a multiple of 32 from 32 "
                          f"to 896 (e.g. efficientnet_lite2@320); got {text!r}", hint=HINT)
    name, _, res = str(text).partition("@")
    return name, int(res)
