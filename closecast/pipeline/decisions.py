"""Choosing, per ticker, between a full retrain and fine-tuning the champion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from closecast.pipeline.registry import Champion

Mode = Literal["retrain", "finetune"]
RequestedMode = Literal["auto", "retrain", "finetune"]
REQUESTED_MODES: tuple[str, ...] = ("auto", "retrain", "finetune")


@dataclass(frozen=True)
class RetrainPolicy:
    """When ``auto`` mode retrains instead of fine-tuning.

    Attributes:
        max_model_age_days: Retrain when the champion's last full retrain is older than this.
        max_u2_degradation: Retrain when the champion's U2 on this run's evaluation days
            exceeds its U2 at promotion by more than this.
        range_tolerance: For presets with one global scaler: retrain when prices the champion
            has not seen leave its fitted range by more than this fraction of the range.
    """

    max_model_age_days: int = 30
    max_u2_degradation: float = 0.10
    range_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.max_model_age_days < 0:
            raise ValueError(f"max_model_age_days must be >= 0, got {self.max_model_age_days}")
        if self.max_u2_degradation < 0:
            raise ValueError(f"max_u2_degradation must be >= 0, got {self.max_u2_degradation}")
        if self.range_tolerance < 0:
            raise ValueError(f"range_tolerance must be >= 0, got {self.range_tolerance}")


@dataclass(frozen=True)
class ModeDecision:
    mode: Mode
    reason: str


def range_excursion(fitted: tuple[float, float], low: float, high: float) -> float:
    """How far ``[low, high]`` leaves ``fitted``, as a fraction of the fitted width."""
    lo, hi = fitted
    width = max(hi - lo, 1e-12)
    return max((high - hi) / width, (lo - low) / width, 0.0)


@dataclass(frozen=True)
class ChampionCheck:
    """What the pipeline measured about the champion before deciding."""

    champion: Champion
    u2_now: float | None
    fitted_range: tuple[float, float] | None
    unseen_low: float | None
    unseen_high: float | None


def decide_mode(
    requested: RequestedMode,
    check: ChampionCheck | None,
    *,
    as_of: date,
    preset: str,
    evaluation_start: date,
    policy: RetrainPolicy,
) -> ModeDecision:
    """Decide how to produce this run's model for one ticker, and say why.

    Args:
        requested: The run's ``mode`` parameter.
        check: The champion and measurements of it, or None when there is no champion.
        as_of: The run's as-of date.
        preset: The preset this run trains with.
        evaluation_start: First date of this run's evaluation (test) period.
        policy: Thresholds for ``auto``.
    """
    if requested == "retrain":
        return ModeDecision("retrain", "retrain requested")
    if check is None:
        return ModeDecision("retrain", "no champion model yet")
    champion = check.champion
    if champion.preset != preset:
        return ModeDecision("retrain", f"preset changed from {champion.preset} to {preset}")
    if champion.trained_through >= evaluation_start:
        return ModeDecision(
            "retrain",
            f"champion {champion.version} was trained through {champion.trained_through}, "
            f"inside this run's evaluation period (from {evaluation_start})",
        )
    if requested == "finetune":
        return ModeDecision("finetune", f"fine-tune requested; champion {champion.version}")
    age = (as_of - champion.retrained_on).days
    if age > policy.max_model_age_days:
        return ModeDecision(
            "retrain",
            f"champion {champion.version} last retrained {age} days ago "
            f"(max {policy.max_model_age_days})",
        )
    if check.fitted_range is not None and check.unseen_low is not None:
        excursion = range_excursion(check.fitted_range, check.unseen_low, check.unseen_high or 0.0)
        if excursion > policy.range_tolerance:
            lo, hi = check.fitted_range
            return ModeDecision(
                "retrain",
                f"new prices leave the scaler's fitted range [{lo:.4g}, {hi:.4g}] by "
                f"{excursion:.0%} (tolerance {policy.range_tolerance:.0%})",
            )
    if check.u2_now is not None and champion.u2_at_promotion is not None:
        degradation = check.u2_now - champion.u2_at_promotion
        if degradation > policy.max_u2_degradation:
            return ModeDecision(
                "retrain",
                f"U2 degraded from {champion.u2_at_promotion:.3f} to {check.u2_now:.3f} "
                f"(max +{policy.max_u2_degradation:.2f})",
            )
    return ModeDecision(
        "finetune",
        f"champion {champion.version} is {age} days old and holds U2 "
        f"{_fmt(check.u2_now)} (was {_fmt(champion.u2_at_promotion)})",
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
