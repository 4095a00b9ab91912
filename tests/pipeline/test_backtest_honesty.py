"""The honesty rules of the backtest the pipeline runs (``training.backtest_many``), tested
through that path itself: the leakage guard, and scalers fit on the training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from closecast.pipeline import training
from closecast.pipeline.evaluation import LeakageError
from lstm_model.config import get_preset
from lstm_model.data import split_by_date
from lstm_model.forecaster import cap_history
from lstm_model.representation import make_representation

N = 260  # prices per ticker; the fast preset holds out the last 50


def _walk(seed: int, n: int = N) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2019-01-01", periods=n, name="date")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n))), index=index)


def test_backtest_refuses_a_model_that_trained_on_its_hold_out_days(monkeypatch) -> None:
    """A split that lets the first hold-out day into the training rows is caught by the
    backtest's own guard, before anything is scored."""

    def leaky_split(data, test_size):
        _train, test = split_by_date(data, test_size)
        return data.loc[: test.index[0]], test  # one hold-out day leaks into training

    monkeypatch.setattr(training, "split_by_date", leaky_split)
    config = get_preset("fast").with_overrides(epochs=1)
    prices = _walk(1)
    first_test = prices.index[N - config.test_size]
    with pytest.raises(LeakageError, match=f"cannot be scored on days from {first_test.date()}"):
        training.backtest_many([prices], config)


@pytest.mark.parametrize("representation", ["relative_log_return", "global_minmax"])
def test_a_shock_in_the_hold_out_tail_never_reaches_the_fitted_model(representation) -> None:
    """The same ticker backtested with and without a spike and a level shift in its hold-out
    tail gets the same scaler (fit on its training rows only), the same network and the same
    predictions up to the shock."""
    config = get_preset("fast").with_overrides(epochs=2, representation=representation)
    clean = _walk(2).rename("CLEAN")
    shocked = clean.copy().rename("SHOCKED")
    first_test = N - config.test_size
    shocked.iloc[first_test + 10] *= 5.0  # a one-day spike...
    shocked.iloc[first_test + 20 :] *= 3.0  # ...and a level shift to the end
    results = training.backtest_many([clean, shocked], config)
    assert all(isinstance(r, training.Backtest) for r in results), results
    plain, hit = results
    assert hit.start == plain.start == clean.index[first_test]

    train, _ = split_by_date(clean, config.test_size)
    own = make_representation(representation, config.look_back).fit(
        cap_history(train, config).to_numpy()
    )
    assert hit.model.representation.to_dict() == own.to_dict()
    assert plain.model.representation.to_dict() == own.to_dict()
    for a, b in zip(hit.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert hit.model.gain == plain.model.gain

    # Scored on the tail only, and identical until the spike enters a window.
    got, want = hit.evaluation.predictions, plain.evaluation.predictions
    assert len(got) == config.test_size and got["date"].iloc[0] == clean.index[first_test].date()
    before = slice(0, 11)  # the spike day's own prediction uses only earlier prices
    np.testing.assert_array_equal(got["predicted"][before], want["predicted"][before])
    assert not np.allclose(got["predicted"][11:], want["predicted"][11:])


def test_backtest_bands_are_the_intervals_of_the_validation_backtest_and_earlier_days() -> None:
    """The pipeline's banded backtest (computed on arrays) is exactly what
    ``intervals.backtest_bounds`` gives on the model's validation backtest: a change to one
    that the other does not share fails here."""
    from closecast.pipeline.uncertainty import BAND_COLUMNS, backtest_with_bands
    from lstm_model import horizons, intervals

    config = get_preset("fast").with_overrides(epochs=1)
    prices = _walk(4)
    (backtest,) = training.backtest_many([prices], config)
    predictions = backtest.evaluation.predictions
    banded = backtest_with_bands(backtest.model, prices, predictions)
    dates = pd.DatetimeIndex(pd.to_datetime(predictions["date"]))
    positions = prices.index.get_indexer(dates)
    long_form = predictions.assign(origin=prices.index[positions - 1], step=1, date=dates)
    calibration = horizons.validation_backtest(backtest.model, prices[prices.index < dates[0]])
    assert len(calibration) > 20  # the validation slice calibrates the first days
    reference = intervals.backtest_bounds(long_form, calibration, intervals.ewma_volatility(prices))
    assert list(banded.columns) == [*predictions.columns, *BAND_COLUMNS]
    for column in BAND_COLUMNS:
        np.testing.assert_array_equal(banded[column], reference[column])
    assert np.isfinite(banded["upper_95"]).all()
