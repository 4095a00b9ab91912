"""Presets and config validation."""

from __future__ import annotations

import dataclasses

import pytest

from lstm_model.config import PRESET_NAMES, ConfigError, ModelConfig, get_preset


def test_tutorial_preset_is_the_tutorial() -> None:
    c = get_preset("tutorial")
    assert (c.units, c.dropout, c.look_back, c.batch_size, c.epochs) == (25, 0.1, 240, 240, 1000)
    assert c.learning_rate == 0.001
    assert c.early_stopping_patience is None
    assert c.test_size == 0.5
    assert c.price_column == "adj_close"
    assert c.representation == "global_minmax"
    assert c.shrinkage is False
    assert c.max_train_days is None


def test_presets_exist_and_default_is_small() -> None:
    assert set(PRESET_NAMES) == {"tutorial", "default", "fast"}
    d = get_preset("default")
    assert d.representation == "relative_log_return"
    assert d.look_back <= 60 and d.epochs <= 30 and d.early_stopping_patience is not None


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="tutorial, default, fast"):
        get_preset("huge")


def test_config_is_frozen_and_overrides_validate() -> None:
    c = get_preset("default")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.units = 3  # type: ignore[misc]
    assert c.with_overrides(units=8).units == 8
    assert c.units != 8 or c.with_overrides(units=9).units == 9
    with pytest.raises(ConfigError, match=r"'dropout' has bad value 1\.5"):
        c.with_overrides(dropout=1.5)
    with pytest.raises(ConfigError, match="'look_back' has bad value 0"):
        c.with_overrides(look_back=0)
    with pytest.raises(ConfigError, match=r"'test_size' has bad value 1\.0"):
        c.with_overrides(test_size=1.0)
    with pytest.raises(ConfigError, match="'price_column' has bad value 'volume'"):
        c.with_overrides(price_column="volume")
    with pytest.raises(ConfigError, match="unknown config field 'layers'"):
        c.with_overrides(layers=2)
    assert isinstance(ConfigError("x"), ValueError)


def test_config_dict_round_trip() -> None:
    for name in PRESET_NAMES:
        c = get_preset(name)
        assert ModelConfig.from_dict(c.to_dict()) == c
