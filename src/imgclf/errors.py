"""Errors a user can act on. The CLI prints them as one line plus a hint, never a traceback."""
from __future__ import annotations


class ImgclfError(Exception):
    """Base of the errors we expect users to meet; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class DatasetError(ImgclfError):
    """The images folder cannot make a dataset (missing, too few classes or images)."""


class BackboneError(ImgclfError):
    """Unknown backbone, or weights that cannot be had offline."""


class BundleError(ImgclfError):
    """A model bundle that is missing, incomplete or tampered with."""


class RunDirError(ImgclfError):
    """A run directory that lacks the output of an earlier step."""
