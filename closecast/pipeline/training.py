"""Producing a ticker's models: the backtest fit, the refit on the whole history, the
fine-tune of the champion on the days it has not seen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import pandas as pd

from closecast.pipeline.evaluation import Evaluation, evaluate
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

    @property
    def best_epoch(self) -> int:
        meta = self.model.meta
        return int(meta.get("best_epoch") or meta.get("epochs_run") or 1)


def backtest_fit(prices: pd.Series, config: ModelConfig) -> Backtest:
    """Fit on the prices before the hold-out tail (``config.test_size``) and score the tail."""
    train, test = split_by_date(prices, config.test_size)
    began = time.perf_counter()
    model = Forecaster.fit(train, config)
    seconds = time.perf_counter() - began
    start = test.index[0]
    return Backtest(
        model=model, evaluation=evaluate(model, prices, start), start=start, seconds=seconds
    )


def refit(prices: pd.Series, backtest: Backtest) -> Forecaster:
    """Train the backtest's procedure again on every price through the last date.

    The backtest chose the number of epochs (early stopping on its validation slice) and the
    shrinkage gain; the refit trains that many epochs on the whole (capped) history, with no
    slice held back, and keeps the gain. What it serves has then seen every usable price.
    """
    model = Forecaster.refit(prices, backtest.model)
    model.meta["refit_of"]["backtest_start"] = backtest.start.strftime("%Y-%m-%d")
    return model


def trained_through_date(model: Forecaster) -> date:
    """The last price date ``model`` trained (or was fine-tuned) on."""
    return pd.Timestamp(model.meta["trained_through"]).date()


def unseen_days(model: Forecaster, prices: pd.Series) -> pd.Series:
    """The prices after the last date ``model`` trained on."""
    seen = pd.Timestamp(model.meta["trained_through"])
    return prices[prices.index > seen]


def finetune(
    model: Forecaster, prices: pd.Series, *, epochs: int, learning_rate: float
) -> Forecaster:
    """Continue ``model`` on the days it has not seen, through the last date of ``prices``."""
    new_from = unseen_days(model, prices).index[0]
    return model.fine_tune(prices, new_from, epochs=epochs, learning_rate=learning_rate)
