"""Does fine-tuning help? Per lineage, the un-fine-tuned refit beside the served record.

A lineage starts with a retrain's refit (its root version, ``models/T/<lineage>/``, kept by
retention) and continues with daily fine-tunes. On the days a fine-tuned version served, the
refit could have served instead: it is frozen, so what it would have forecast for a target
date is its one-step prediction from the prices before it (the same window the served
forecast was made from), computed again at any time from the kept refit and the history on
its current basis. The two records are paired day by day and compared by a Diebold-Mariano
test (the refit in the benchmark's place); when fine-tuning hurts with evidence, the policy
stops fine-tuning the lineage and its refit serves (:func:`finetune_hurts`,
:mod:`closecast.pipeline.decisions`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from closecast.outputs.records import FinetuneScoreRow, ServedRow
from closecast.pipeline.evaluation import check_unseen, significance
from closecast.pipeline.live import Ledger, live_stats
from closecast.pipeline.settings import RetrainPolicy
from lstm_model.base import ForecastModel
from lstm_model.significance import DieboldMarianoResult, evidence

VERDICTS = {"better": "helps", "worse": "hurts", "unclear": "unclear"}
"""The Diebold-Mariano evidence of the fine-tuned record against the refit's, in words."""


@dataclass(frozen=True)
class FinetuneComparison:
    """A lineage's fine-tuned forecasts and what its refit would have served on those days.

    Attributes:
        lineage: The lineage (its refit is the version of that name).
        served: The lineage's scored one-step forecasts served by its fine-tuned versions.
        refit: The refit's forecast for each of those target dates, in order.
    """

    lineage: str
    served: tuple[ServedRow, ...] = ()
    refit: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        return len(self.served)

    @property
    def test(self) -> DieboldMarianoResult | None:
        """Fine-tuned against refit (one-sided p: fine-tuning helps); None under 3 days."""
        return significance(
            [r.actual for r in self.served], [r.forecast for r in self.served], list(self.refit)
        )

    @property
    def verdict(self) -> str:
        """``helps``, ``hurts`` or ``unclear`` (evidence at 95%), or ``untested``."""
        test = self.test
        return "untested" if test is None else VERDICTS[evidence(test)]


def fine_tuned_rows(ledger: Ledger, lineage: str) -> list[ServedRow]:
    """The lineage's scored one-step forecasts that a fine-tuned version served (the refit
    itself served the others, so they are the same on both sides)."""
    return [row for row in ledger.scored(lineage) if row.model_version != lineage]


def compare_finetune(
    refit: ForecastModel, ledger: Ledger, lineage: str, prices: pd.Series
) -> FinetuneComparison:
    """Pair the lineage's fine-tuned record with what its refit would have served.

    Args:
        refit: The lineage's refit (its root version), as stored.
        ledger: The ticker's ledger, on the history's current basis and scored.
        lineage: The lineage.
        prices: The validated history through the run date (date-indexed).

    Raises:
        LeakageError: The refit trained on one of the target dates (it never does: the
            lineage's forecasts were all served after it).
    """
    rows = fine_tuned_rows(ledger, lineage)
    if not rows:
        return FinetuneComparison(lineage)
    start = pd.Timestamp(rows[0].target_date)
    check_unseen(refit, start)  # type: ignore[arg-type]
    predicted = refit.predict_one_step(prices, start)
    paired = [
        (row, float(predicted[pd.Timestamp(row.target_date)]))
        for row in rows
        if pd.Timestamp(row.target_date) in predicted.index
    ]
    return FinetuneComparison(
        lineage, tuple(row for row, _ in paired), tuple(value for _, value in paired)
    )


def finetune_hurts(comparison: FinetuneComparison | None, policy: RetrainPolicy) -> str | None:
    """Why fine-tuning the lineage stops, in words: over at least ``min_live_days`` paired
    days, the fine-tuned forecasts are worse than the refit's with evidence (one-sided
    Diebold-Mariano p > 0.975); else None."""
    if comparison is None:
        return None
    test = comparison.test
    if test is None or test.n < max(policy.min_live_days, 1) or evidence(test) != "worse":
        return None
    low, high = test.u2_interval(0.95)
    first, last = comparison.served[0].target_date, comparison.served[-1].target_date
    return (
        f"fine-tuning hurts lineage {comparison.lineage}: its fine-tuned forecasts' RMSE is "
        f"{test.u2:.3f}x its refit's over {test.n} days {first}..{last} (95% [{low:.3f}, "
        f"{high:.3f}], Diebold-Mariano p {test.p_value:.3g})"
    )


def finetune_score_row(
    ticker: str, comparison: FinetuneComparison, stopped_on: date | None
) -> FinetuneScoreRow:
    """The published comparison of one ticker's serving lineage."""
    served = live_stats(comparison.served)
    refit = live_stats(
        [
            replace(row, forecast=value)
            for row, value in zip(comparison.served, comparison.refit, strict=True)
        ]
    )
    test = comparison.test
    return FinetuneScoreRow(
        ticker=ticker,
        lineage=comparison.lineage,
        n=comparison.n,
        first_date=served.first,
        last_date=served.last,
        served_rmse=served.rmse,
        refit_rmse=refit.rmse,
        naive_rmse=served.naive_rmse,
        served_u2=served.u2,
        refit_u2=refit.u2,
        u2_vs_refit=None if test is None else test.u2,
        dm_stat=None if test is None else test.statistic,
        dm_p=None if test is None else test.p_value,
        verdict=comparison.verdict,
        finetune_stopped_on=stopped_on,
    )
