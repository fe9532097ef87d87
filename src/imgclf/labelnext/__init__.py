"""Label next: which unlabelled images a person should label to teach the classifier most (issue 17).

- :mod:`.select` — the selection strategies (``density``, ``margin``, ``entropy``, ``kcenter``, ``hybrid``,
  ``random``): class probabilities and features in, the indices of the batch to label out,
  near duplicates of labelled images skipped.

Everything here works on arrays; :mod:`imgclf.labelnext.step` reads the run directory and the
pool, and writes suggestions.csv; :mod:`imgclf.labelnext.quick` is the quick update (Label next's
Refit): the head refit on the current labels as a draft iteration.
"""
from .strategies import DEFAULT_STRATEGY, STRATEGIES, Selection, kcenter_greedy, select, uncertainty

__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "Selection", "kcenter_greedy", "select", "uncertainty"]
