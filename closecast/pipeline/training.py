"""Producing a ticker's models: the backtest fit, the refit on the whole history, the
fine-tune of the champion on the days it has not seen."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from closecast.pipeline.evaluation import Evaluation, check_unseen, score_predictions
from lstm_model import batch
from lstm_model.config import ModelConfig
from lstm_model.data import split_by_date
from lstm_model.forecaster import Forecaster


@dataclass(frozen=True)
class Backtest:
    """The retrain procedure measured honestly: fit before the hold-out tail, scored on it."""

    model: Forecaster
    evaluation: Evaluation
    start: pd.Timestamp  # first hold-out date
    seconds: float


def backtest_many(prices: Sequence[pd.Series], config: ModelConfig) -> list[Backtest | Exception]:
    """Backtest many tickers of one configuration: fit each on its prices before the
    hold-out tail (``config.test_size``) and score the tail, trained in groups
    (:mod:`lstm_model.batch`: each ticker exactly as if trained alone). A ticker that fails
    gets its exception in its place."""
    results: list[Backtest | Exception] = []
    splits = []
    for series in prices:
        try:
            train, test = split_by_date(series, config.test_size)
            splits.append((train, test.index[0]))
        except Exception as exc:
            splits.append(exc)
    todo = [i for i, split in enumerate(splits) if not isinstance(split, Exception)]
    began = time.perf_counter()
    models = batch.fit_many([splits[i][0] for i in todo], config, return_exceptions=True)
    fitted = {i: m for i, m in zip(todo, models, strict=True)}
    scored = [i for i in todo if not isinstance(fitted[i], Exception)]
    for i in scored:
        check_unseen(fitted[i], splits[i][1])
    predictions = batch.predict_one_step_many(
        [fitted[i] for i in scored], [prices[i] for i in scored], [splits[i][1] for i in scored]
    )
    by_index = dict(zip(scored, predictions, strict=True))
    seconds = (time.perf_counter() - began) / max(len(todo), 1)  # each one's share, scored
    for i, split in enumerate(splits):
        if isinstance(split, Exception):
            results.append(split)
        elif isinstance(fitted[i], Exception):
            results.append(fitted[i])
        else:
            evaluation = score_predictions(prices[i], by_index[i])
            results.append(Backtest(fitted[i], evaluation, split[1], seconds))
    return results


def refit_many(prices: Sequence[pd.Series], backtests: Sequence[Backtest]) -> list[Any]:
    """Train each backtest's procedure again on every price through the last date: its best
    epoch count (early stopping on its validation slice) and its shrinkage gain, with no
    slice held back, so what is served has seen every usable price. Trained in groups;
    failures in place."""
    models = batch.refit_many(list(prices), [b.model for b in backtests], return_exceptions=True)
    for model, backtest in zip(models, backtests, strict=True):
        if not isinstance(model, Exception):
            model.meta["refit_of"]["backtest_start"] = backtest.start.strftime("%Y-%m-%d")
    return models


def finetune_many(
    models: Sequence[Forecaster], prices: Sequence[pd.Series], *, epochs: int, learning_rate: float
) -> list[Any]:
    """Continue each model on the days it has not seen, through the last date of its prices;
    trained in groups, failures in place."""
    new_from = [unseen_days(m, p).index[0] for m, p in zip(models, prices, strict=True)]
    return batch.fine_tune_many(
        list(models),
        list(prices),
        new_from,
        epochs=epochs,
        learning_rate=learning_rate,
        return_exceptions=True,
    )


def trained_through_date(model: Forecaster) -> date:
    """The last price date ``model`` trained (or was fine-tuned) on."""
    return pd.Timestamp(model.meta["trained_through"]).date()


def unseen_days(model: Forecaster, prices: pd.Series) -> pd.Series:
    """The prices after the last date ``model`` trained on."""
    seen = pd.Timestamp(model.meta["trained_through"])
    return prices[prices.index > seen]
