"""Fixtures for the ML-core tests: tiny synthetic price series and one shared fast model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_model.config import ModelConfig, get_preset


def _make_series(values: np.ndarray, start: str = "2015-01-02") -> pd.Series:
    index = pd.bdate_range(start, periods=len(values), name="date")
    return pd.Series(np.asarray(values, dtype="float64"), index=index, name="adj_close")


@pytest.fixture(scope="session")
def make_series():
    """Build a business-day-indexed price Series from values."""
    return _make_series


@pytest.fixture(scope="session")
def sine() -> pd.Series:
    """A clean, learnable series: 100 + 10 sin(2 pi t / 20)."""
    t = np.arange(600)
    return _make_series(100 + 10 * np.sin(2 * np.pi * t / 20))


@pytest.fixture(scope="session")
def random_walk() -> pd.Series:
    rng = np.random.default_rng(7)
    return _make_series(50 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, 400))))


@pytest.fixture(scope="session")
def fast_config() -> ModelConfig:
    return get_preset("fast")


@pytest.fixture(scope="session")
def fast_model(random_walk: pd.Series, fast_config: ModelConfig):
    """One fast model trained on the first 300 days of the random walk (shared, read-only)."""
    from lstm_model.forecaster import Forecaster

    return Forecaster.fit(random_walk.iloc[:300], fast_config)


@pytest.fixture(scope="session")
def window_model(random_walk: pd.Series, fast_config: ModelConfig):
    """A fast model without the shrinkage gain, so its predictions depend on the whole
    window (with a gain of 0 a model predicts yesterday's price whatever the window)."""
    from lstm_model.forecaster import Forecaster

    return Forecaster.fit(random_walk.iloc[:300], fast_config.with_overrides(shrinkage=False))
