"""The pooled step's backtest of a global model (``pooled.pooled_backtest``) scores every
ticker's days from the cut in one call when the model forecasts every ticker at once: the
same rows as each ticker's own ``predict_one_step``, tickers with too few prices around the
cut left out."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from closecast.pipeline.pooled import Relative, pooled_backtest
from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError
from lstm_model.global_models import for_ticker
from lstm_model.registry import GLOBAL_MODELS

CUT = date(2021, 6, 7)
END = date(2021, 8, 31)


def _prices(index: pd.DatetimeIndex, seed: int, scale: float = 0.02) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, scale, len(index)))), index=index)


def _histories() -> dict[str, pd.Series]:
    stocks = pd.bdate_range("2020-03-02", "2021-09-30")
    return {
        "S0": _prices(stocks, 0, 0.01),
        "S1": _prices(stocks, 1, 0.02),
        "BTC": _prices(pd.date_range("2020-03-02", "2021-09-30"), 9, 0.04),
        "LATE": _prices(pd.bdate_range("2021-06-01", "2021-09-30"), 5),  # 4 prices before the cut
        "GONE": _prices(pd.bdate_range("2020-03-02", "2021-05-28"), 6),  # none from the cut on
    }


def _one_by_one(model, histories: dict[str, pd.Series]) -> Relative:
    """What the pooled backtest scores, computed ticker by ticker."""
    rows = []
    for ticker, prices in histories.items():
        known = prices[prices.index <= pd.Timestamp(END)]
        try:
            predicted = for_ticker(model, ticker).predict_one_step(known, pd.Timestamp(CUT))
        except InsufficientDataError:
            continue
        previous = known.shift(1)
        rows += [(d.date(), known[d], v, previous[d]) for d, v in predicted.items()]
    return Relative.of(rows)


@pytest.mark.parametrize("kind", sorted(GLOBAL_MODELS))
def test_the_pooled_backtest_equals_each_tickers_own_forecasts(kind) -> None:
    histories = _histories()
    fit_on = {t: p for t, p in histories.items() if t not in ("LATE", "GONE")}
    model = GLOBAL_MODELS[kind].fit(fit_on, CUT, ModelConfig(max_train_days=None, epochs=2))
    pooled = pooled_backtest(model, histories, CUT, END)
    expected = _one_by_one(model, histories)
    # At least the three fitted tickers' days from the cut through END; GONE has none.
    days = sum(int(((p.index >= pd.Timestamp(CUT)) & (p.index <= pd.Timestamp(END))).sum())
               for t, p in histories.items() if t in fit_on)  # fmt: skip
    assert len(pooled.actual) == len(expected.actual) >= days
    np.testing.assert_array_equal(pooled.actual, expected.actual)
    np.testing.assert_allclose(pooled.predicted, expected.predicted, rtol=1e-6)
