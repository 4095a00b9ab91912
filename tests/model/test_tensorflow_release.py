"""Training many models in one process must not accumulate TensorFlow graphs."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
from tensorflow.python.framework.func_graph import FuncGraph

from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster
from lstm_model.model import release_tensorflow_state


def live_graphs() -> int:
    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def test_released_models_leave_no_traced_graphs_behind() -> None:
    index = pd.bdate_range("2015-01-01", periods=160)
    rng = np.random.default_rng(3)
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 160))), index=index)
    config = get_preset("fast").with_overrides(epochs=1)

    Forecaster.fit(prices, config)
    release_tensorflow_state()
    baseline = live_graphs()
    for _ in range(3):
        Forecaster.fit(prices, config).forecast_next(prices)
        release_tensorflow_state()
    assert live_graphs() <= baseline
