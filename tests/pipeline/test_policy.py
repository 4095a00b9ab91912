"""Model policy (issue 17): why a retrained candidate is or is not compared with the champion,
in words that match what happened; a lost challenge waits its interval."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd

from closecast.pipeline.decisions import (
    ChampionState,
    ModeDecision,
    RetrainPolicy,
    decide_mode,
    judge_candidate,
    uncompared_reason,
)
from closecast.pipeline.live import LiveStats
from closecast.pipeline.versions import Champion

CHAMPION = Champion(
    version="v0003",
    lineage="v0002",
    trained_through=date(2020, 12, 10),
    retrained_on=date(2020, 12, 1),
    promoted_on=date(2020, 12, 10),
    preset="fast",
    backtest=None,
)
RETRAIN = ModeDecision("retrain", "retrain requested")
BACKFILL = ModeDecision("retrain", "backfill: ...", backfill=True)


def test_the_reason_a_candidate_is_not_compared_names_the_real_cause() -> None:
    def reason(decision=RETRAIN, champion=CHAMPION, preset="fast", unreadable=None):
        return uncompared_reason(decision, champion, preset=preset, unreadable=unreadable)

    assert reason() is None  # a champion of the same preset: compared
    assert reason(champion=None) == "no champion: promoted"
    assert reason(BACKFILL) == "not compared with champion v0003: not promoted"
    assert reason(preset="default") == (
        "preset default replaces champion v0003 (fast) by request, without comparison: promoted"
    )
    assert reason(unreadable="bad json").startswith("champion unreadable")
    # The verdict quotes it instead of "no champion" (issue 17: backfill and preset runs).
    frame = pd.DataFrame(
        {"date": [date(2020, 12, 1)], "actual": [1.0], "predicted": [1.0], "naive": [1.0]}
    )
    verdict = judge_candidate(
        frame, [], champion=None, policy=RetrainPolicy(), uncompared=reason(BACKFILL)
    )
    assert verdict.promote and "no champion" not in verdict.reason


def _decide(champion: Champion, as_of: date, policy: RetrainPolicy | None = None):
    state = ChampionState(champion=champion, live=LiveStats(n=0))
    return decide_mode("auto", state, as_of=as_of, preset="fast", policy=policy or RetrainPolicy())


def test_a_lost_challenge_waits_its_interval_before_the_age_rule_retrains_again() -> None:
    old = replace(CHAMPION, retrained_on=date(2020, 10, 1))  # 70 days old on 2020-12-10
    assert _decide(old, date(2020, 12, 10)).mode == "retrain"
    challenged = replace(old, challenged_on=date(2020, 12, 10))
    waiting = _decide(challenged, date(2020, 12, 16))
    assert waiting.mode == "finetune"
    assert "lost to it on 2020-12-10; retrain retried from 2020-12-17" in waiting.reason
    assert _decide(challenged, date(2020, 12, 17)).mode == "retrain"
    assert _decide(challenged, date(2020, 12, 11), RetrainPolicy(challenge_retry_days=1)).mode == (
        "retrain"
    )
    # The pointer keeps the date through JSON.
    assert Champion.from_json(challenged.to_json()) == challenged
    assert Champion.from_json({**old.to_json()}).challenged_on is None
