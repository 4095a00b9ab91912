"""Retrain-or-fine-tune decisions: each rule, and the reason it records."""

from __future__ import annotations

from datetime import date

import pytest

from closecast.pipeline.decisions import (
    ChampionCheck,
    RetrainPolicy,
    decide_mode,
    range_excursion,
)
from closecast.pipeline.registry import Champion

AS_OF = date(2020, 12, 11)
EVAL_START = date(2020, 11, 1)


def champion(**changes) -> Champion:
    fields = {
        "version": "v0003",
        "trained_through": date(2020, 10, 20),
        "retrained_on": date(2020, 12, 1),
        "promoted_on": date(2020, 12, 7),
        "preset": "fast",
        "u2_at_promotion": 0.99,
    }
    fields.update(changes)
    return Champion(**fields)


def check(champ: Champion | None = None, **changes) -> ChampionCheck:
    fields = {
        "champion": champ or champion(),
        "u2_now": 1.0,
        "fitted_range": None,
        "unseen_low": 100.0,
        "unseen_high": 110.0,
    }
    fields.update(changes)
    return ChampionCheck(**fields)


def decide(requested="auto", chk=None, preset="fast", policy=None):
    return decide_mode(
        requested,
        chk,
        as_of=AS_OF,
        preset=preset,
        evaluation_start=EVAL_START,
        policy=policy or RetrainPolicy(),
    )


def test_no_champion_retrains() -> None:
    decision = decide("auto", None)
    assert decision.mode == "retrain"
    assert "no champion" in decision.reason


def test_fresh_healthy_champion_is_fine_tuned() -> None:
    decision = decide("auto", check())
    assert decision.mode == "finetune"
    assert "v0003" in decision.reason


def test_requested_retrain_always_retrains() -> None:
    assert decide("retrain", check()).mode == "retrain"


def test_old_model_retrains_and_says_its_age() -> None:
    decision = decide("auto", check(champion(retrained_on=date(2020, 10, 1))))
    assert decision.mode == "retrain"
    assert "71 days" in decision.reason


def test_degraded_u2_retrains() -> None:
    decision = decide("auto", check(u2_now=1.2))
    assert decision.mode == "retrain"
    assert "U2 degraded from 0.990 to 1.200" in decision.reason


def test_small_u2_change_within_tolerance_fine_tunes() -> None:
    assert decide("auto", check(u2_now=1.05)).mode == "finetune"


def test_leaving_the_global_scaler_range_retrains() -> None:
    chk = check(fitted_range=(50.0, 100.0), unseen_low=90.0, unseen_high=110.0)
    decision = decide("auto", chk)
    assert decision.mode == "retrain"
    assert "fitted range" in decision.reason


def test_range_within_tolerance_fine_tunes() -> None:
    chk = check(fitted_range=(50.0, 100.0), unseen_low=60.0, unseen_high=101.0)
    assert decide("auto", chk).mode == "finetune"


def test_changed_preset_retrains() -> None:
    decision = decide("auto", check(), preset="default")
    assert decision.mode == "retrain"
    assert "preset changed" in decision.reason


def test_champion_trained_into_evaluation_period_is_never_fine_tuned() -> None:
    late = champion(trained_through=date(2020, 11, 15))
    decision = decide("finetune", check(late, u2_now=None))
    assert decision.mode == "retrain"
    assert "inside this run's evaluation period" in decision.reason


def test_range_excursion_is_a_fraction_of_the_width() -> None:
    assert range_excursion((0.0, 10.0), 1.0, 9.0) == 0.0
    assert range_excursion((0.0, 10.0), 1.0, 12.0) == pytest.approx(0.2)
    assert range_excursion((0.0, 10.0), -5.0, 9.0) == pytest.approx(0.5)


def test_policy_rejects_negative_thresholds() -> None:
    with pytest.raises(ValueError, match="max_model_age_days"):
        RetrainPolicy(max_model_age_days=-1)
