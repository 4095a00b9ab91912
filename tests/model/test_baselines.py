"""Baselines as models: hand-checked rules, no look-ahead, persistence, and the registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lstm_model.base import ForecastModel, model_kind
from lstm_model.baselines import (
    DriftForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    infer_season_length,
)
from lstm_model.data import InsufficientDataError
from lstm_model.registry import MODELS, UnknownModelError, fit_model, load_model

BASELINES = [NaiveForecaster, DriftForecaster, SeasonalNaiveForecaster]


@pytest.fixture(scope="module")
def fitted(random_walk):
    return {cls.kind: cls.fit(random_walk.iloc[:300]) for cls in BASELINES}


def test_rules_by_hand(fitted, random_walk) -> None:
    start = random_walk.index[300]
    values = random_walk.to_numpy()
    mean_return = float(np.mean(np.diff(np.log(values[:300]))))
    expected = {
        "naive": values[299:-1],
        "drift": values[299:-1] * np.exp(mean_return),
        "seasonal_naive": values[295:-5],  # business days: a 5-day season
    }
    for kind, model in fitted.items():
        predicted = model.predict_one_step(random_walk, start)
        assert predicted.index.equals(random_walk.index[300:])
        np.testing.assert_allclose(predicted.to_numpy(), expected[kind], err_msg=kind)
    assert fitted["drift"].mean_log_return == pytest.approx(mean_return)
    assert fitted["seasonal_naive"].season_length == 5


@pytest.mark.parametrize("kind", ["naive", "drift", "seasonal_naive"])
def test_predictions_use_only_earlier_prices(fitted, random_walk, kind) -> None:
    model = fitted[kind]
    start = random_walk.index[300]
    before = model.predict_one_step(random_walk, start)
    perturbed = random_walk.copy()
    perturbed.iloc[350:] *= 3.0
    after = model.predict_one_step(perturbed, start)
    np.testing.assert_array_equal(after.iloc[:51].to_numpy(), before.iloc[:51].to_numpy())
    assert not np.array_equal(after.iloc[51:].to_numpy(), before.iloc[51:].to_numpy())
    # the next-day forecast is the one-step prediction from the same history
    assert model.forecast_next(random_walk.iloc[:350]) == pytest.approx(before.iloc[50])


@pytest.mark.parametrize("kind", ["naive", "drift", "seasonal_naive"])
def test_meta_records_training_and_the_validation_slice(fitted, random_walk, kind) -> None:
    meta = fitted[kind].meta
    assert meta["kind"] == kind == model_kind(fitted[kind])
    assert meta["trained_through"] == meta["train_end"] == f"{random_walk.index[299]:%Y-%m-%d}"
    # the last 20% (default validation_fraction) of the targets the model could predict
    history = 5 if kind == "seasonal_naive" else 1
    n_val = round((300 - history) * 0.2)
    assert meta["n_val"] == n_val
    assert meta["val_start"] == f"{random_walk.index[300 - n_val]:%Y-%m-%d}"


def test_max_train_days_limits_the_drift_estimate(random_walk, fast_config) -> None:
    model = DriftForecaster.fit(
        random_walk.iloc[:300], fast_config.with_overrides(max_train_days=50)
    )
    recent = np.log(random_walk.iloc[250:300].to_numpy())
    assert model.mean_log_return == pytest.approx(float(np.mean(np.diff(recent))))
    assert model.meta["train_start"] == f"{random_walk.index[250]:%Y-%m-%d}"
    assert model.meta["data_start"] == f"{random_walk.index[0]:%Y-%m-%d}"


def test_forecast_paths_are_closed_forms(fitted, random_walk) -> None:
    known = random_walk.iloc[:300]
    last = known.iloc[-1]
    np.testing.assert_allclose(fitted["naive"].forecast_path(known, 3), [last] * 3)
    mu = fitted["drift"].mean_log_return
    np.testing.assert_allclose(
        fitted["drift"].forecast_path(known, 3), last * np.exp(mu * np.arange(1, 4))
    )
    season = known.to_numpy()[-5:]
    np.testing.assert_allclose(
        fitted["seasonal_naive"].forecast_path(known, 7), [*season, *season[:2]]
    )


@pytest.mark.parametrize("kind", ["naive", "drift", "seasonal_naive"])
def test_paths_from_many_origins_are_each_origins_own_path(fitted, random_walk, kind) -> None:
    # Backtests ask for paths from hundreds of origins at once: each row must be the path
    # forecast_path gives from the prices up to that origin, and a row of NaN where there
    # are too few of them.
    model = fitted[kind]
    origins = np.array([0, 1, 3, 4, 5, 40, 299, 300, len(random_walk) - 2])
    paths = model.forecast_paths(random_walk, origins, 7)
    for row, origin in zip(paths, origins, strict=True):
        if origin + 1 < model.history:
            assert np.isnan(row).all()
        else:
            np.testing.assert_array_equal(
                row, model.forecast_path(random_walk.iloc[: origin + 1], 7)
            )
    assert not np.isnan(paths[origins + 1 >= model.history]).any()


def test_season_length_follows_the_calendar(make_series) -> None:
    weekdays = make_series(np.linspace(1, 2, 30))
    every_day = pd.Series(
        np.linspace(1, 2, 30), index=pd.date_range("2024-01-01", periods=30, name="date")
    )
    assert infer_season_length(weekdays) == 5
    assert infer_season_length(every_day) == 7
    assert SeasonalNaiveForecaster.fit(every_day).season_length == 7
    model = fit_model("seasonal_naive", weekdays, None, season_length=3)
    assert model.forecast_next(weekdays) == weekdays.iloc[-3]
    with pytest.raises(ValueError, match="season_length must be an integer >= 1"):
        SeasonalNaiveForecaster.fit(weekdays, season_length=0)
    with pytest.raises(TypeError, match="unknown parameter"):
        SeasonalNaiveForecaster.fit(weekdays, period=5)
    with pytest.raises(TypeError, match="naive takes no parameters"):
        NaiveForecaster.fit(weekdays, season_length=5)


def test_too_little_data_is_a_clear_error(random_walk) -> None:
    with pytest.raises(InsufficientDataError, match="seasonal_naive: need at least 5 training"):
        SeasonalNaiveForecaster.fit(random_walk.iloc[:4])
    with pytest.raises(InsufficientDataError, match="drift: need at least 2 training"):
        DriftForecaster.fit(random_walk.iloc[:1])
    model = SeasonalNaiveForecaster.fit(random_walk.iloc[:100])
    with pytest.raises(InsufficientDataError, match="need 5 prices before"):
        model.predict_one_step(random_walk, random_walk.index[3])
    with pytest.raises(InsufficientDataError, match="no prices on or after"):
        model.predict_one_step(random_walk.iloc[:50], random_walk.index[80])
    with pytest.raises(InsufficientDataError, match="at least 5 prices"):
        model.forecast_next(random_walk.iloc[:4])


@pytest.mark.parametrize("kind", ["naive", "drift", "seasonal_naive"])
def test_save_and_load_through_the_registry(fitted, random_walk, tmp_path, kind) -> None:
    fitted[kind].save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["kind"] == kind
    loaded = load_model(tmp_path)
    assert type(loaded) is MODELS[kind]
    assert loaded.meta == fitted[kind].meta
    assert loaded.forecast_next(random_walk) == fitted[kind].forecast_next(random_walk)


def test_a_saved_lstm_without_kind_loads_as_lstm(fast_model, random_walk, tmp_path) -> None:
    from lstm_model.forecaster import Forecaster

    fast_model.save(tmp_path)
    assert "kind" not in json.loads((tmp_path / "meta.json").read_text())
    loaded = load_model(tmp_path)
    assert isinstance(loaded, Forecaster) and model_kind(loaded) == "lstm"
    assert loaded.forecast_next(random_walk) == pytest.approx(fast_model.forecast_next(random_walk))


def test_every_registered_model_satisfies_the_interface(fitted, fast_model) -> None:
    assert set(MODELS) == {"lstm", "naive", "drift", "seasonal_naive"}
    for model in [*fitted.values(), fast_model]:
        assert isinstance(model, ForecastModel)


def test_registry_errors_name_the_kind_and_the_directory(tmp_path, random_walk) -> None:
    with pytest.raises(UnknownModelError, match="unknown model kind 'gru'; known kinds: drift"):
        fit_model("gru", random_walk, None)
    with pytest.raises(FileNotFoundError, match=r"missing meta\.json"):
        load_model(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"kind": "gru"}))
    with pytest.raises(UnknownModelError, match=f"{tmp_path}: unknown model kind 'gru'"):
        load_model(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"kind": "drift"}))
    with pytest.raises(ValueError, match="kind 'drift' is not 'naive'"):
        NaiveForecaster.load(tmp_path)


@pytest.mark.parametrize(
    ("kind", "rows"), [("naive", 1), ("naive", 2), ("drift", 2), ("seasonal_naive", 5)]
)
def test_a_history_too_short_for_a_validation_slice_still_fits(random_walk, kind, rows) -> None:
    """A listing a few days old: the rule is fit on what there is, without a validation
    slice (its intervals then come from its live record alone), and forecasts."""
    prices = random_walk.iloc[:rows]
    model = fit_model(kind, prices, None)
    assert (model.meta["val_start"], model.meta["n_val"]) == (None, 0)
    assert model.meta["trained_through"] == f"{prices.index[-1]:%Y-%m-%d}"
    if kind == "naive":
        expected = prices.iloc[-1]
    elif kind == "drift":
        expected = prices.iloc[-1] * np.exp(np.diff(np.log(prices.to_numpy())).mean())
    else:
        expected = prices.iloc[-5]
    assert model.forecast_next(prices) == pytest.approx(expected, rel=1e-12)
