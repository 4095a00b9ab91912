"""Which model to serve: the honest comparison of every candidate against naive.

The ``auto`` policy serves the candidate with the smallest squared error on the backtest, but
only if it beats the naive forecast with evidence (one-sided Diebold-Mariano p below
``alpha``); otherwise it serves the naive forecast, because nothing showed it can do better.
The choice is made on the backtest days, so the backtest score of the chosen model is
optimistic (it won a contest on those days); its live record scores it honestly from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lstm_model.significance import EVIDENCE_ALPHA, DieboldMarianoResult

__all__ = ["NAIVE_KIND", "Selection", "select_model"]

NAIVE_KIND = "naive"


@dataclass(frozen=True)
class Selection:
    """The model to serve and why (for ``mode_reason``)."""

    kind: str
    reason: str


def select_model(
    candidates: Mapping[str, DieboldMarianoResult], *, alpha: float = EVIDENCE_ALPHA
) -> Selection:
    """Pick the model to serve from each candidate's backtest test against naive.

    Args:
        candidates: Model kind -> its Diebold-Mariano result on the same backtest days
            (the naive model itself may be among them; it never beats itself).
        alpha: One-sided significance level (default: the 95% U2 interval lies below 1).

    Raises:
        ValueError: No candidate, or candidates scored on different numbers of days.
    """
    if not candidates:
        raise ValueError("select_model needs at least one candidate")
    sizes = {result.n for result in candidates.values()}
    if len(sizes) > 1:
        raise ValueError(f"candidates were scored on different numbers of days: {sorted(sizes)}")
    winners = {k: r for k, r in candidates.items() if k != NAIVE_KIND and r.p_value < alpha}
    if not winners:
        best = min(candidates, key=lambda k: candidates[k].mse_model)
        result = candidates[best]
        return Selection(
            NAIVE_KIND,
            f"auto: no model beats naive with evidence (best {best}: U2 {result.u2:.4f}, "
            f"p {result.p_value:.3g} >= {alpha:g})",
        )
    kind = min(winners, key=lambda k: winners[k].mse_model)
    result = winners[kind]
    return Selection(
        kind,
        f"auto: {kind} beats naive with evidence (U2 {result.u2:.4f}, p {result.p_value:.3g} "
        f"< {alpha:g}) and has the smallest backtest error of {len(winners)} that do",
    )
