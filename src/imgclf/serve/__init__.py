"""The REST service: ``imgclf serve`` (see :mod:`imgclf.serve.app`) and its client ``imgclf call``."""
