"""Training many models in one process must not accumulate TensorFlow graphs."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
from tensorflow.python.framework.func_graph import FuncGraph

from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster
from lstm_model.model import release_tensorflow_state


def live_graphs() -> int:
    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


@pytest.fixture
def traced_graphs(monkeypatch: pytest.MonkeyPatch) -> weakref.WeakSet[FuncGraph]:
    """Every FuncGraph TensorFlow traces from now on, held weakly: alive only while
    something else still holds it."""
    traced: weakref.WeakSet[FuncGraph] = weakref.WeakSet()
    init = FuncGraph.__init__

    def tracking_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        traced.add(self)

    monkeypatch.setattr(FuncGraph, "__init__", tracking_init)
    return traced


def test_released_models_leave_no_traced_graphs_behind(traced_graphs) -> None:
    index = pd.bdate_range("2015-01-01", periods=160)
    rng = np.random.default_rng(3)
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 160))), index=index)
    config = get_preset("fast").with_overrides(epochs=1)

    # The first fit in a process may build what TensorFlow keeps for good (its caches).
    Forecaster.fit(prices, config)
    release_tensorflow_state()
    baseline = live_graphs()
    traced_graphs.clear()

    # Every graph a later fit and forecast trace is freed once released: none is left to pile
    # up, however many models the process trains (one fit shows it for each of them; the
    # count check below is the former form of the same rule).
    Forecaster.fit(prices, config).forecast_next(prices)
    traced = len(traced_graphs)
    release_tensorflow_state()
    assert traced > 0  # the fit traced graphs, so the check below can fail
    assert live_graphs() <= baseline
    assert len(traced_graphs) == 0, f"{len(traced_graphs)} of {traced} traced graphs kept"
