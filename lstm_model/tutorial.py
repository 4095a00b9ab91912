"""The LSTM stock tutorial, reproduced honestly (pure computation, no files).

The tutorial fit its 0..1 scaler on all prices (train and test) and shifted its "actual"
column by one day against the predictions. Here the scaler (representation) is fit on
training rows only, each prediction for day ``d`` uses only prices before ``d``, and the
naive forecast (``d``'s value = actual at ``d - 1``) is reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from lstm_model import metrics
from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices, split_by_date
from lstm_model.forecaster import Forecaster


@dataclass
class TutorialResult:
    """What one tutorial run produced.

    Attributes:
        predictions: One row per test day: ``date, actual, predicted, naive``.
        metrics: ``train_rmse, test_rmse, naive_rmse, u2`` plus mae, mape, directional accuracy,
            sizes, epochs run and training seconds.
        forecaster: The trained model.
        prices: The full price series used.
        train_end: Last training date.
    """

    predictions: pd.DataFrame
    metrics: dict[str, Any]
    forecaster: Forecaster
    prices: pd.Series
    train_end: pd.Timestamp


def run_tutorial(prices: pd.Series, config: ModelConfig) -> TutorialResult:
    """Split, train on the training period, predict every test day one step ahead, score.

    Raises:
        InsufficientDataError: The history is too short for the split and the window.
    """
    check_prices(prices)
    train, test = split_by_date(prices, config.test_size)
    history = config.look_back + (1 if config.representation == "relative_log_return" else 0)
    if len(train) <= history + 1:
        raise InsufficientDataError(
            f"{len(prices)} prices split into {len(train)} training and {len(test)} test days; "
            f"a {config.look_back}-day window needs more than {history + 1} training days"
        )
    forecaster = Forecaster.fit(train, config)
    predicted = forecaster.predict_one_step(prices, test.index[0])
    naive = prices.shift(1).loc[test.index]
    frame = pd.DataFrame(
        {
            "date": test.index,
            "actual": test.to_numpy(),
            "predicted": predicted.to_numpy(),
            "naive": naive.to_numpy(),
        }
    )
    train_dates = train.index[forecaster.representation.history :]
    train_predicted = forecaster.predict_one_step(train, train_dates[0])
    test_summary = metrics.summarize(frame["actual"], frame["predicted"], frame["naive"])
    result = {
        "train_rmse": metrics.rmse(train.loc[train_dates], train_predicted),
        "test_rmse": test_summary.rmse,
        "naive_rmse": test_summary.naive_rmse,
        "u2": test_summary.u2,
        "test_mae": test_summary.mae,
        "test_mape": test_summary.mape,
        "test_directional_accuracy": test_summary.directional_accuracy,
        "train_naive_rmse": metrics.naive_rmse(
            train.loc[train_dates], train.shift(1).loc[train_dates]
        ),
        "n_train": len(train),
        "n_test": len(test),
        "train_start": train.index[0].strftime("%Y-%m-%d"),
        "train_end": train.index[-1].strftime("%Y-%m-%d"),
        "test_end": test.index[-1].strftime("%Y-%m-%d"),
        "epochs_run": forecaster.meta["epochs_run"],
        "train_seconds": forecaster.meta["fit_seconds"],
        "representation": config.representation,
        "look_back": config.look_back,
        "price_column": config.price_column,
    }
    return TutorialResult(
        predictions=frame,
        metrics=result,
        forecaster=forecaster,
        prices=prices,
        train_end=train.index[-1],
    )
