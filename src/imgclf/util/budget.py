"""The time budget of a run: ``train.time_limit_s`` made into one object that the run passes to each step.

A :class:`TimeBudget` is a deadline on the ``time.perf_counter`` clock (or none). The run starts one
(:meth:`TimeBudget.start`), the featurizer selection plans inside it, and each time-limited step gets
the budget less what the run needs after that step (:meth:`TimeBudget.before`): the final SVM's C
search and refinement read :meth:`TimeBudget.left_s` when they begin. The plan's refinement epochs
travel with it (:attr:`TimeBudget.refine_epochs`), so no setting of the user's is rewritten.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

MIN_STEP_S = 1.0  # a step out of time still gets this long: it does its smallest unit of work


@dataclass(frozen=True)
class TimeBudget:
    """A deadline (``None``: no limit) and, for refinement, the epochs the plan gives it (``None``: ``refine.epochs``)."""

    limit_s: float | None = None  # the whole run's seconds (train.time_limit_s); None: no limit
    deadline: float | None = None  # time.perf_counter() by which this budget's step must be done
    refine_epochs: int | None = None

    @classmethod
    def start(cls, limit_s: float | None) -> "TimeBudget":
        """A budget of ``limit_s`` seconds from now (0 or None: no limit)."""
        return cls(limit_s or None, time.perf_counter() + limit_s if limit_s else None)

    def left_s(self) -> float | None:
        """Seconds left now, at least :data:`MIN_STEP_S`; None without a limit."""
        return None if self.deadline is None else max(MIN_STEP_S, self.deadline - time.perf_counter())

    def before(self, later_s: float) -> "TimeBudget":
        """This budget less ``later_s`` seconds the run needs after the step it is given to."""
        return self if self.deadline is None else dataclasses.replace(self, deadline=self.deadline - later_s)

    def with_refine_epochs(self, epochs: int | None) -> "TimeBudget":
        """This budget carrying the epochs the plan gives refinement."""
        return dataclasses.replace(self, refine_epochs=epochs)

    def cap(self, max_s: float) -> float:
        """Seconds a step may take: the fewer of ``max_s`` (its own setting; 0 = no limit) and what is left; 0 = no limit."""
        left = self.left_s()
        return max_s if left is None else min(max_s, left) if max_s else left
