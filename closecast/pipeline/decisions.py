"""Per ticker: retrain or fine-tune, and whether a retrained candidate replaces the champion.

Every decision is taken on honest numbers only: the lineage's backtest (scored on days its
procedure never trained on) and its live record (forecasts scored on days after they were
served). ``mode_reason`` quotes the numbers that decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import pandas as pd

from closecast.choices import RequestedMode
from closecast.pipeline.live import LiveStats
from closecast.pipeline.registry import Champion
from closecast.pipeline.settings import RetrainPolicy
from closecast.records import ServedRow
from lstm_model import metrics

Mode = Literal["retrain", "finetune"]


@dataclass(frozen=True)
class ModeDecision:
    """How this run produces the ticker's serving model, and why.

    ``backfill`` marks a run dated before the champion's promotion: it retrains for its own
    outputs but neither promotes nor records served forecasts.
    """

    mode: Mode
    reason: str
    backfill: bool = False


@dataclass(frozen=True)
class ChampionState:
    """What the pipeline knows about the champion before deciding."""

    champion: Champion
    live: LiveStats  # the serving lineage's scored served forecasts
    fitted_range: tuple[float, float] | None = None
    unseen_low: float | None = None
    unseen_high: float | None = None


def range_excursion(fitted: tuple[float, float], low: float, high: float) -> float:
    """How far ``[low, high]`` leaves ``fitted``, as a fraction of the fitted width."""
    lo, hi = fitted
    width = max(hi - lo, 1e-12)
    return max((high - hi) / width, (lo - low) / width, 0.0)


def decide_mode(
    requested: RequestedMode,
    state: ChampionState | None,
    *,
    as_of: date,
    preset: str,
    policy: RetrainPolicy,
    unreadable: str | None = None,
) -> ModeDecision:
    """Decide how to produce this run's serving model for one ticker, and say why.

    Args:
        requested: The run's ``mode`` parameter.
        state: The champion and what is known of it; None when there is none (or unreadable).
        as_of: The run date.
        preset: The preset this run trains with.
        policy: Thresholds for ``auto``.
        unreadable: Why the champion pointer or model could not be read, if so.
    """
    if unreadable is not None:
        return ModeDecision("retrain", f"champion unreadable ({unreadable})")
    if state is None:
        return ModeDecision("retrain", "no champion model yet")
    champion = state.champion
    if as_of < champion.promoted_on:
        return ModeDecision(
            "retrain",
            f"backfill: as-of {as_of} precedes champion {champion.version}'s promotion on "
            f"{champion.promoted_on}; a model for this date is trained but not promoted",
            backfill=True,
        )
    if requested == "retrain":
        return ModeDecision("retrain", "retrain requested")
    if champion.preset != preset:
        return ModeDecision("retrain", f"preset changed from {champion.preset} to {preset}")
    if requested == "finetune":
        return ModeDecision("finetune", f"fine-tune requested; champion {champion.version}")
    age = (as_of - champion.retrained_on).days
    if age > policy.max_model_age_days:
        return ModeDecision(
            "retrain",
            f"lineage {champion.lineage} retrained {age} days ago "
            f"(max {policy.max_model_age_days})",
        )
    if state.fitted_range is not None and state.unseen_low is not None:
        excursion = range_excursion(state.fitted_range, state.unseen_low, state.unseen_high or 0)
        if excursion > policy.range_tolerance:
            lo, hi = state.fitted_range
            return ModeDecision(
                "retrain",
                f"new prices leave the scaler's fitted range [{lo:.4g}, {hi:.4g}] by "
                f"{excursion:.0%} (tolerance {policy.range_tolerance:.0%})",
            )
    backtest_u2 = champion.backtest.u2 if champion.backtest else None
    live = state.live
    live_text = f"live U2 {_fmt(live.u2)} over {live.n} scored days"
    if _degraded(live, backtest_u2, policy):
        return ModeDecision(
            "retrain",
            f"lineage {champion.lineage}: {live_text} vs backtest U2 {backtest_u2:.3f} "
            f"(max +{policy.max_u2_degradation:.2f})",
        )
    return ModeDecision(
        "finetune",
        f"lineage {champion.lineage} is {age} days old; {live_text}, backtest U2 "
        f"{_fmt(backtest_u2)}",
    )


def _degraded(live: LiveStats, backtest_u2: float | None, policy: RetrainPolicy) -> bool:
    """Whether enough scored served forecasts show U2 worse than the backtest by too much."""
    if live.n < max(policy.min_live_days, 1) or live.u2 is None or backtest_u2 is None:
        return False
    return live.u2 - backtest_u2 > policy.max_u2_degradation


@dataclass(frozen=True)
class Verdict:
    """Whether a retrained candidate replaces the champion, with the numbers that decided."""

    promote: bool
    reason: str
    n_common: int = 0
    candidate_u2: float | None = None
    champion_u2: float | None = None


def judge_candidate(
    candidate_backtest: pd.DataFrame,
    champion_live: Sequence[ServedRow],
    *,
    champion: Champion | None,
    policy: RetrainPolicy,
) -> Verdict:
    """Compare a retrained candidate with the champion lineage on days neither trained on.

    The candidate's evidence is its backtest (a model fit before its hold-out tail, scored on
    the tail); the champion's is its lineage's live record (each forecast served before its
    target date). They are compared by U2 over the target dates both have scored, so a price
    re-basing between them does not matter. The candidate wins ties.

    Args:
        candidate_backtest: The candidate's hold-out predictions (date, actual, predicted,
            naive).
        champion_live: The champion lineage's scored served forecasts.
        champion: The champion, or None when there is none.
        policy: ``min_compare_days``.
    """
    if champion is None:
        return Verdict(True, "no champion: promoted")
    by_date = {row.target_date: row for row in champion_live if row.actual is not None}
    common = candidate_backtest[candidate_backtest["date"].isin(by_date)]
    n = len(common)
    if n < max(policy.min_compare_days, 1):
        return Verdict(
            True,
            f"{n} day(s) shared with champion {champion.version}'s live record "
            f"(need {policy.min_compare_days}): promoted",
            n_common=n,
        )
    served = [by_date[d] for d in common["date"]]
    candidate_u2 = metrics.u2(common["actual"], common["predicted"], common["naive"])
    champion_u2 = metrics.u2(
        [r.actual for r in served], [r.forecast for r in served], [r.naive for r in served]
    )
    promote = candidate_u2 <= champion_u2
    return Verdict(
        promote,
        f"on {n} days from {common['date'].iloc[0]} to {common['date'].iloc[-1]}: candidate "
        f"backtest U2 {candidate_u2:.4f} vs champion lineage {champion.lineage} live U2 "
        f"{champion_u2:.4f}: " + ("promoted" if promote else "champion kept"),
        n_common=n,
        candidate_u2=candidate_u2,
        champion_u2=champion_u2,
    )


def _fmt(value: float | None) -> str:
    return metrics.format_u2(value)  # "undefined (...)" rather than "nan" on flat prices
