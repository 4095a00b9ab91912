"""Data preparation: chronological split, train-only scaler, copy-free windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lstm_model.data import (
    InsufficientDataError,
    MinMaxScaler,
    make_windows,
    price_series,
    split_by_date,
)
from lstm_model.representation import (
    GlobalMinMax,
    RelativeLogReturn,
    representation_from_json,
)


def test_split_fraction_is_chronological_and_never_shuffled(make_series) -> None:
    s = make_series(np.arange(1.0, 11.0))
    train, test = split_by_date(s, 0.5)
    assert train.tolist() == [1, 2, 3, 4, 5]
    assert test.tolist() == [6, 7, 8, 9, 10]
    assert train.index.max() < test.index.min()


def test_split_by_trailing_days_and_odd_fraction(make_series) -> None:
    s = make_series(np.arange(1.0, 12.0))
    train, test = split_by_date(s, 3)
    assert len(train) == 8
    assert test.tolist() == [9, 10, 11]
    train, test = split_by_date(s, 0.5)  # floor(11 * 0.5) = 5 training rows
    assert (len(train), len(test)) == (5, 6)


@pytest.mark.parametrize("bad", [0, -1, 1.0, 0.0, True, "10"])
def test_split_rejects_bad_sizes(bad, make_series) -> None:
    with pytest.raises(ValueError, match="test_size"):
        split_by_date(make_series(np.arange(1.0, 11.0)), bad)


def test_split_needs_training_rows(make_series) -> None:
    with pytest.raises(InsufficientDataError, match="10 test rows from 10 rows"):
        split_by_date(make_series(np.arange(1.0, 11.0)), 10)


def test_scaler_is_fit_on_training_rows_only(make_series) -> None:
    s = make_series(np.linspace(10, 20, 100))
    spiked = s.copy()
    spiked.iloc[-10] = 1000.0  # a spike in the test period
    train, _ = split_by_date(s, 20)
    train_spiked, _ = split_by_date(spiked, 20)
    a = MinMaxScaler().fit(train)
    b = MinMaxScaler().fit(train_spiked)
    assert a == b
    assert (a.data_min, a.data_max) == (10.0, train.max())
    rep = GlobalMinMax(5).fit(train_spiked.to_numpy())
    assert rep.fitted_range() == (10.0, train.max())
    # test prices above the training range map above 1 (no clipping)
    assert a.transform([train.max() * 2])[0] > 1


def test_scaler_round_trips_through_json_and_inverts() -> None:
    scaler = MinMaxScaler().fit([2.0, 4.0, 6.0])
    assert scaler.transform([2.0, 4.0, 6.0]).tolist() == [0.0, 0.5, 1.0]
    restored = MinMaxScaler.from_json(scaler.to_json())
    assert restored == scaler
    assert json.loads(scaler.to_json())["data_max"] == 6.0
    np.testing.assert_allclose(restored.inverse_transform([0.0, 0.25, 1.0]), [2.0, 3.0, 6.0])
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxScaler().transform([1.0])


def test_windows_are_views_and_target_is_next_day() -> None:
    values = np.arange(10.0)
    x, y = make_windows(values, 3)
    assert x.shape == (7, 3)
    assert y.shape == (7,)
    assert np.shares_memory(x, values)  # no copy
    for k in range(7):
        assert x[k].tolist() == [k, k + 1, k + 2]
        assert y[k] == k + 3  # the next day; the window holds only earlier days
        assert x[k].max() < y[k]
    with pytest.raises(InsufficientDataError, match="more than 3 values"):
        make_windows(np.arange(3.0), 3)


def test_relative_log_return_windows_and_inverse() -> None:
    prices = np.array([100.0, 101.0, 99.0, 102.0, 103.0, 101.0, 104.0])
    rep = RelativeLogReturn(3).fit(prices[:5])
    returns = np.diff(np.log(prices[:5]))
    assert rep.mean == pytest.approx(returns.mean())
    assert rep.history == 4
    x, y = rep.windows(prices)
    assert x.shape == (3, 3, 1)
    z = (np.diff(np.log(prices)) - rep.mean) / rep.std
    np.testing.assert_allclose(x[0, :, 0], z[:3], rtol=1e-6)
    np.testing.assert_allclose(y, z[3:], rtol=1e-6)
    # the true target maps back to the true price
    np.testing.assert_allclose(rep.to_price(z[3:], prices[3:-1]), prices[4:])
    assert rep.fitted_range() is None
    restored = representation_from_json(rep.to_json())
    assert isinstance(restored, RelativeLogReturn)
    np.testing.assert_array_equal(restored.inputs(prices), rep.inputs(prices))


def test_price_series_drops_null_rows_and_sorts() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2020-01-03", "2020-01-02", "2020-01-06"]),
            "adj_close": [2.0, 1.0, np.nan],
        }
    )
    s = price_series(frame)
    assert s.tolist() == [1.0, 2.0]
    assert s.index.is_monotonic_increasing
