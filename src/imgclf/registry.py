"""Named plug-ins (backbones, engines, trainers, image-search providers) in one shape.

A :class:`Registry` maps names to builders; ``@registry.register(name)`` adds one, and
``registry.lookup(name)`` returns it or raises an :class:`ImgclfError` that lists the known names.
Plug-ins that live in optional modules register themselves when imported: ``plugin(name)`` names
the module to import before giving up on an unknown name.
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from .errors import ImgclfError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    def __init__(self, kind: str, *, plugin: Callable[[str], str] | None = None,
                 error: type[ImgclfError] = ImgclfError, hint: str = ""):
        super().__init__()
        self.kind = kind  # how the lookup error names what was asked for, e.g. "engine.backend"
        self._plugin = plugin
        self._error = error
        self._hint = hint

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``fn`` (or a class) under ``name``."""

        def deco(fn: T) -> T:
            self[name] = fn
            return fn

        return deco

    def lookup(self, name: str) -> T:
        """The entry ``name``, importing its plug-in module first if need be."""
        if name not in self and self._plugin is not None:
            try:
                importlib.import_module(self._plugin(name))
            except ModuleNotFoundError:
                pass
        if name not in self:
            known = ", ".join(sorted(self)) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; expected one of: {known}", hint=self._hint)
        return self[name]
