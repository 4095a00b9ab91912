"""Real (tiny) TensorFlow training: leakage, reproducibility, persistence, fine-tuning."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from lstm_model import metrics
from lstm_model.config import get_preset
from lstm_model.data import InsufficientDataError, split_by_date
from lstm_model.forecaster import CorruptModelFileError, Forecaster


def test_predictions_use_only_earlier_prices(window_model, random_walk) -> None:
    assert window_model.gain is None  # no shrinkage: the window, not just the last price
    start = random_walk.index[300]
    before = window_model.predict_one_step(random_walk, start)
    assert before.index[0] == start and before.index[-1] == random_walk.index[-1]
    perturbed = random_walk.copy()
    perturbed.iloc[345] *= 1.05  # one day inside later windows, not their last price
    after = window_model.predict_one_step(perturbed, start)
    # predictions for days up to 345 (each from strictly earlier prices) are unchanged...
    np.testing.assert_array_equal(after.iloc[:46].to_numpy(), before.iloc[:46].to_numpy())
    # ...and those whose window holds day 345 but not as its last price change too
    assert not np.allclose(after.iloc[47:55].to_numpy(), before.iloc[47:55].to_numpy())
    # the next-day forecast equals the one-step prediction made from the same history
    nxt = window_model.forecast_next(random_walk.iloc[:350])
    assert nxt == pytest.approx(before.iloc[50], rel=1e-6)


def test_predict_needs_a_full_window(fast_model, random_walk) -> None:
    with pytest.raises(InsufficientDataError, match="need 11 prices before"):
        fast_model.predict_one_step(random_walk, random_walk.index[5])
    with pytest.raises(InsufficientDataError, match="at least 11 prices"):
        fast_model.forecast_next(random_walk.iloc[:4])


def test_fit_rejects_too_short_history(fast_config, random_walk) -> None:
    with pytest.raises(InsufficientDataError, match="got 8"):
        Forecaster.fit(random_walk.iloc[:8], fast_config)


def test_meta_describes_training(fast_model, random_walk, fast_config) -> None:
    meta = fast_model.meta
    assert meta["train_start"] == random_walk.index[0].strftime("%Y-%m-%d")
    assert (
        meta["train_end"] == meta["trained_through"] == random_walk.index[299].strftime("%Y-%m-%d")
    )
    assert meta["n_train"] == 300
    assert meta["epochs_run"] == fast_config.epochs
    assert meta["seed"] == fast_config.seed
    assert {"keras", "tensorflow", "numpy"} <= set(meta["versions"])
    assert meta["fine_tunes"] == []
    assert 0.0 <= fast_model.gain <= 1.0
    assert fast_model.fitted_range() is None


def test_max_train_days_caps_history(random_walk, fast_config) -> None:
    f = Forecaster.fit(random_walk, fast_config.with_overrides(max_train_days=100, epochs=1))
    assert f.meta["n_train"] == 100
    assert f.meta["train_start"] == random_walk.index[-100].strftime("%Y-%m-%d")
    assert f.meta["data_start"] == random_walk.index[0].strftime("%Y-%m-%d")


def test_same_seed_same_data_gives_identical_predictions(window_model, random_walk) -> None:
    # The session's window model (no shrinkage: a gain of 0 would make every run predict the
    # naive forecast), trained earlier in this process, and the same fit again now: the same
    # weights whatever the process trained in between.
    a, cfg = window_model, window_model.config
    b = Forecaster.fit(random_walk.iloc[:300], cfg)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    pa = a.predict_one_step(random_walk, random_walk.index[300])
    pb = b.predict_one_step(random_walk, random_walk.index[300])
    pd.testing.assert_series_equal(pa, pb, check_exact=True)
    c = Forecaster.fit(random_walk.iloc[:300], cfg.with_overrides(seed=1))
    assert not np.array_equal(c.predict_one_step(random_walk, random_walk.index[300]), pa)


def test_save_load_round_trip(fast_model, random_walk, tmp_path, monkeypatch) -> None:
    import keras

    calls = []
    real_load = keras.models.load_model

    def spy(*args, **kwargs):
        calls.append(kwargs.get("safe_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", spy)
    fast_model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.keras",
        "scaler.json",
        "meta.json",
    }
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["config"] == fast_model.config.to_dict()
    loaded = Forecaster.load(tmp_path / "m")
    assert calls == []  # nothing in the file is deserialised: the weights are read out
    assert loaded.config == fast_model.config
    assert loaded.gain == fast_model.gain
    assert loaded.meta["train_end"] == fast_model.meta["train_end"]
    start = random_walk.index[300]
    pd.testing.assert_series_equal(
        loaded.predict_one_step(random_walk, start),
        fast_model.predict_one_step(random_walk, start),
        check_exact=True,
    )
    assert loaded.forecast_next(random_walk) == fast_model.forecast_next(random_walk)
    # Saved again from its weights (no Keras model of its own), it is still Keras's format,
    # the same network for anyone loading it with Keras (safe mode).
    loaded.save(tmp_path / "again")
    network = real_load(tmp_path / "again" / "model.keras", safe_mode=True, compile=False)
    for ours, theirs in zip(fast_model.get_weights(), network.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert network.layers[1].rate == fast_model.config.dropout
    with pytest.raises(FileNotFoundError, match=r"model\.keras"):
        Forecaster.load(tmp_path)


def test_a_saved_network_of_another_shape_is_refused(fast_model, tmp_path) -> None:
    from lstm_model.model import build_network

    fast_model.save(tmp_path / "m")
    config = fast_model.config
    other = build_network(
        look_back=config.look_back, n_features=1, units=config.units + 1, dropout=0.0,
        seed=0, learning_rate=1e-3, name="other",
    )  # fmt: skip
    other.save(tmp_path / "m" / "model.keras")
    with pytest.raises(CorruptModelFileError, match=r"^model\.keras: unreadable .*units"):
        Forecaster.load(tmp_path / "m")


@pytest.mark.parametrize(
    ("name", "junk"),
    [
        ("scaler.json", "{not json"),
        ("scaler.json", '{"kind": "global_minmax"}'),  # fields missing
        ("meta.json", "[]"),
        ("model.keras", "not a Keras archive"),
    ],
)
def test_a_corrupt_saved_file_is_named(fast_model, tmp_path, name, junk) -> None:
    # A corrupt scaler.json used to surface as a bare JSONDecodeError beside the folder.
    fast_model.save(tmp_path / "m")
    (tmp_path / "m" / name).write_text(junk)

    with pytest.raises(CorruptModelFileError, match=rf"^{re.escape(name)}: unreadable \("):
        Forecaster.load(tmp_path / "m")


def test_fine_tune_changes_weights_but_keeps_scaler(fast_model, random_walk) -> None:
    before_weights = [w.copy() for w in fast_model.model.get_weights()]
    before_state = fast_model.representation.to_json()
    new_from = random_walk.index[300]
    tuned = fast_model.fine_tune(random_walk, new_from, epochs=2, learning_rate=0.01)
    assert tuned is not fast_model
    assert tuned.representation.to_json() == before_state
    assert tuned.gain == fast_model.gain
    after = tuned.model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(after, before_weights, strict=True))
    # the original is untouched
    for a, b in zip(fast_model.model.get_weights(), before_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert tuned.meta["trained_through"] == random_walk.index[-1].strftime("%Y-%m-%d")
    (record,) = tuned.meta["fine_tunes"]
    assert record["from"] == new_from.strftime("%Y-%m-%d")
    assert record["n_windows"] == 100
    assert (record["epochs"], record["learning_rate"]) == (2, 0.01)
    assert fast_model.meta["fine_tunes"] == []
    with pytest.raises(InsufficientDataError):
        fast_model.fine_tune(random_walk, pd.Timestamp("2099-01-01"), epochs=1, learning_rate=0.01)


def test_tutorial_representation_scaler_ignores_test_period(random_walk) -> None:
    cfg = get_preset("tutorial").with_overrides(look_back=10, batch_size=64, epochs=1)
    train, _ = split_by_date(random_walk, cfg.test_size)
    spiked = random_walk.copy()
    spiked.iloc[-5] = 10_000.0
    model = Forecaster.fit(split_by_date(spiked, cfg.test_size)[0], cfg)
    assert model.fitted_range() == (train.min(), train.max())


def test_default_preset_learns_a_sine(sine) -> None:
    cfg = get_preset("default")
    train, test = split_by_date(sine, 100)
    f = Forecaster.fit(train, cfg)
    predicted = f.predict_one_step(sine, test.index[0])
    u2 = metrics.u2(test.to_numpy(), predicted.to_numpy(), sine.shift(1).loc[test.index].to_numpy())
    assert u2 < 0.5, f"default preset U2 on a sine is {u2:.3f}"


@pytest.fixture(scope="module")
def stopping_model(random_walk, fast_config) -> Forecaster:
    """A fast model with early stopping (patience 1, at most 8 epochs); read it only."""
    cfg = fast_config.with_overrides(early_stopping_patience=1, epochs=8)
    return Forecaster.fit(random_walk.iloc[:300], cfg)


def test_best_epoch_is_the_epoch_whose_weights_were_kept(fast_model, stopping_model) -> None:
    # Without early stopping every epoch runs and the last one is kept.
    assert fast_model.config.early_stopping_patience is None
    plain = fast_model.meta
    assert plain["best_epoch"] == plain["epochs_run"] == fast_model.config.epochs
    meta, cfg = stopping_model.meta, stopping_model.config
    assert 1 <= meta["best_epoch"] <= meta["epochs_run"]
    if meta["epochs_run"] < cfg.epochs:  # stopped: patience ran out after the best epoch
        assert meta["best_epoch"] == meta["epochs_run"] - cfg.early_stopping_patience


def test_refit_trains_the_whole_history_for_the_best_epoch(random_walk, stopping_model) -> None:
    backtest = stopping_model
    refit = Forecaster.refit(random_walk.iloc[:350], backtest)
    assert refit.meta["epochs_run"] == refit.config.epochs == backtest.meta["best_epoch"]
    assert refit.meta["n_val"] == 0 and refit.config.early_stopping_patience is None
    assert refit.gain == backtest.gain and refit.meta["gain"] == backtest.gain
    assert refit.meta["trained_through"] == random_walk.index[349].strftime("%Y-%m-%d")
    assert refit.meta["refit_of"]["train_end"] == backtest.meta["train_end"]
    assert refit.meta["refit_of"]["best_epoch"] == backtest.meta["best_epoch"]
    # every window, including the last days a backtest would hold out, is trained on
    assert refit.meta["n_windows"] == 350 - refit.representation.history


def test_a_window_dependent_model_survives_save_and_load(window_model, random_walk, tmp_path):
    # fast_model's gain may be 0 (then it predicts yesterday's price whatever its weights);
    # this model's predictions depend on every weight, so equality means the weights came back.
    window_model.save(tmp_path / "w")
    loaded = Forecaster.load(tmp_path / "w")
    start = random_walk.index[300]
    expected = window_model.predict_one_step(random_walk, start)
    assert not np.allclose(expected.to_numpy(), random_walk.shift(1).loc[expected.index])
    pd.testing.assert_series_equal(loaded.predict_one_step(random_walk, start), expected)


def test_forecast_windows_is_forecast_next_from_each_row(fast_model, random_walk) -> None:
    history = fast_model.representation.history
    ends = [history, history + 7, 300, len(random_walk)]
    values = random_walk.to_numpy()
    windows = np.stack([values[end - history : end] for end in ends])
    expected = [fast_model.forecast_next(random_walk.iloc[:end]) for end in ends]
    got = fast_model.forecast_windows(windows)
    assert len(set(np.round(got, 8))) == len(ends)  # each row its own forecast
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match=f"windows of {history} prices"):
        fast_model.forecast_windows(windows[:, 1:])
