"""The run's one time budget: a deadline, what a step gets of it, and the plan's refinement epochs."""
import time

import pytest

from imgclf.util.budget import MIN_STEP_S, TimeBudget


def test_no_limit_caps_nothing():
    for budget in (TimeBudget(), TimeBudget.start(0), TimeBudget.start(None)):
        assert budget.left_s() is None and budget.limit_s is None
        assert budget.before(1e6).left_s() is None
        assert budget.cap(0.0) == 0.0 and budget.cap(7.0) == 7.0  # a step's own setting still holds


def test_a_step_gets_what_is_left_less_what_follows_it():
    budget = TimeBudget.start(100.0)
    assert budget.limit_s == 100.0
    assert 99.0 < budget.left_s() <= 100.0
    step = budget.before(30.0)
    assert 69.0 < step.left_s() <= 70.0 and step.limit_s == 100.0
    assert step.cap(0.0) == pytest.approx(step.left_s(), abs=0.5)  # 0: the step has no limit of its own
    assert step.cap(5.0) == 5.0  # its own setting, when tighter, wins
    assert budget.before(1000.0).left_s() == MIN_STEP_S  # out of time: still the smallest unit of work


def test_the_left_seconds_shrink_with_the_clock():
    budget = TimeBudget.start(50.0)
    first = budget.left_s()
    time.sleep(0.05)
    assert budget.left_s() < first


def test_refine_epochs_travel_with_the_budget():
    budget = TimeBudget.start(60.0).before(10.0).with_refine_epochs(4)
    assert budget.refine_epochs == 4 and budget.before(5.0).refine_epochs == 4
    assert TimeBudget().refine_epochs is None
