"""Per ticker: retrain or fine-tune, and whether a retrained candidate replaces the champion.

Every decision is taken on honest numbers only: the lineage's backtest (scored on days its
procedure never trained on) and its live record (forecasts scored on days after they were
served). ``mode_reason`` quotes the numbers that decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import pandas as pd

from closecast.control.choices import RequestedMode
from closecast.outputs.records import ServedRow
from closecast.pipeline.finetuning import FinetuneComparison, finetune_hurts
from closecast.pipeline.live import LiveStats
from closecast.pipeline.settings import RetrainPolicy
from closecast.pipeline.versions import Champion
from lstm_model import metrics
from lstm_model.significance import DieboldMarianoResult, evidence

Mode = Literal["retrain", "finetune", "keep"]


@dataclass(frozen=True)
class ModeDecision:
    """How this run produces the ticker's serving model, and why.

    ``backfill`` marks a run dated before the champion's promotion: it retrains for its own
    outputs but neither promotes nor records served forecasts. ``keep`` serves the champion
    as is: its lineage's fine-tuning was stopped (``stop_finetune``: by this run, whose
    pointer then names the lineage's refit and records the stop).
    """

    mode: Mode
    reason: str
    backfill: bool = False
    stop_finetune: bool = False


@dataclass(frozen=True)
class ChampionState:
    """What the pipeline knows about the champion before deciding."""

    champion: Champion
    live: LiveStats  # the serving lineage's scored served forecasts
    live_test: DieboldMarianoResult | None = None  # the same record against naive
    fitted_range: tuple[float, float] | None = None
    unseen_low: float | None = None
    unseen_high: float | None = None
    finetune: FinetuneComparison | None = None  # fine-tuned record beside the refit's


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
    backtest_u2 = champion.backtest.u2 if champion.backtest else None
    live_text = f"live U2 {_fmt(state.live.u2)} over {state.live.n} scored days"
    waiting = challenge_wait(champion, as_of, policy)
    if waiting is not None:
        return continue_lineage(
            state,
            policy,
            f"lineage {champion.lineage} is {age} days old; {waiting}; {live_text}, "
            f"backtest U2 {_fmt(backtest_u2)}",
        )
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
    degraded = live_degradation(state.live_test, backtest_u2, policy)
    if degraded is not None:
        return ModeDecision("retrain", f"lineage {champion.lineage}: {degraded}")
    return continue_lineage(
        state,
        policy,
        f"lineage {champion.lineage} is {age} days old; {live_text}, backtest U2 "
        f"{_fmt(backtest_u2)}",
    )


def continue_lineage(state: ChampionState, policy: RetrainPolicy, reason: str) -> ModeDecision:
    """The lineage goes on without a retrain: fine-tuned, unless fine-tuning it was stopped
    before or hurts it now with evidence (then its refit serves as is)."""
    champion = state.champion
    if champion.finetune_stopped_on is not None:
        return ModeDecision(
            "keep",
            f"{reason}; fine-tuning of lineage {champion.lineage} stopped on "
            f"{champion.finetune_stopped_on}: {champion.version} serves as is",
        )
    hurts = finetune_hurts(state.finetune, policy)
    if hurts is not None:
        return ModeDecision(
            "keep",
            f"{reason}; {hurts}: fine-tuning stopped, its refit {champion.lineage} serves",
            stop_finetune=True,
        )
    return ModeDecision("finetune", reason)


def challenge_wait(champion: Champion, as_of: date, policy: RetrainPolicy) -> str | None:
    """Why ``auto`` does not retrain yet: a retrained candidate lost to this lineage less
    than ``challenge_retry_days`` ago (None when it may)."""
    challenged = champion.challenged_on
    if challenged is None or as_of < challenged:
        return None
    retry = challenged + timedelta(days=policy.challenge_retry_days)
    if as_of >= retry:
        return None
    return f"a retrained candidate lost to it on {challenged}; retrain retried from {retry}"


def live_degradation(
    live_test: DieboldMarianoResult | None, backtest_u2: float | None, policy: RetrainPolicy
) -> str | None:
    """Whether the lineage's live record shows, with evidence, that it has gone bad; in
    words, or None.

    Two tests on the scored served forecasts (at least ``min_live_days``), so that the
    evidence grows with the days scored rather than a fixed margin: the live U2's 95%
    interval lies above the lineage's backtest U2 (plus ``max_u2_degradation``): it is
    worse than its own backtest promised; or the Diebold-Mariano test says it is worse than
    naive (one-sided p > 0.975).
    """
    if live_test is None or live_test.n < max(policy.min_live_days, 1):
        return None
    low, high = live_test.u2_interval(0.95)
    text = (
        f"live U2 {live_test.u2:.3f} over {live_test.n} scored days (95% [{low:.3f}, {high:.3f}])"
    )
    if backtest_u2 is not None and low > backtest_u2 + policy.max_u2_degradation:
        margin = f" + {policy.max_u2_degradation:.2f}" if policy.max_u2_degradation else ""
        return f"{text} is above its backtest U2 {backtest_u2:.3f}{margin}"
    if evidence(live_test) == "worse":
        return (
            f"{text} is worse than naive with evidence (Diebold-Mariano p {live_test.p_value:.3g})"
        )
    return None


@dataclass(frozen=True)
class Verdict:
    """Whether a retrained candidate replaces the champion, with the numbers that decided."""

    promote: bool
    reason: str
    n_common: int = 0
    candidate_u2: float | None = None
    champion_u2: float | None = None


def uncompared_reason(
    decision: ModeDecision, champion: Champion | None, *, preset: str, unreadable: str | None
) -> str | None:
    """Why a retrained candidate is not compared with the champion, in words; None when it
    is compared (a readable champion of the same preset, on a run that may promote).

    Args:
        decision: This run's decision for the ticker.
        champion: The champion pointer as read (None when there is none).
        preset: The preset this run trains with.
        unreadable: Why the champion could not be read, if so.
    """
    if unreadable is not None:
        return "champion unreadable: the candidate replaces it, promoted"
    if champion is None:
        return "no champion: promoted"
    if decision.backfill:
        return f"not compared with champion {champion.version}: not promoted"
    if champion.preset != preset:
        # A new preset replaces the old one by request, not by comparison.
        return (
            f"preset {preset} replaces champion {champion.version} ({champion.preset}) by "
            "request, without comparison: promoted"
        )
    return None


def judge_candidate(
    candidate_backtest: pd.DataFrame,
    champion_live: Sequence[ServedRow],
    *,
    champion: Champion | None,
    policy: RetrainPolicy,
    uncompared: str | None = None,
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
        champion: The champion, or None when there is none (or it is not compared).
        policy: ``min_compare_days``.
        uncompared: Why there is no comparison (:func:`uncompared_reason`), for the verdict.
    """
    if champion is None or uncompared is not None:
        return Verdict(True, uncompared or "no champion: promoted")
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
