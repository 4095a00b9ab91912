"""The NumPy forward pass serves every forecast: it must be the Keras network's."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_model.inference import network_outputs
from lstm_model.model import build_network


@pytest.mark.parametrize(("look_back", "features", "units"), [(20, 1, 32), (10, 3, 16)])
def test_numpy_outputs_are_the_keras_networks(look_back, features, units) -> None:
    network = build_network(
        look_back=look_back, n_features=features, units=units, dropout=0.1, seed=3,
        learning_rate=1e-3, name="t",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    # Weights far from their initial values, so every gate matters (a swapped gate block or
    # a missing bias changes the outputs by far more than float32 rounding).
    network.set_weights([w + rng.normal(0, 0.3, w.shape) for w in network.get_weights()])
    windows = rng.normal(0, 1, (257, look_back, features)).astype("float32")
    expected = np.asarray(network(windows, training=False), dtype="float64").reshape(-1)
    got = network_outputs(network.get_weights(), windows)
    assert got.dtype == np.float64 and got.shape == (257,)
    assert np.abs(expected).max() > 0.1  # not a degenerate network
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_no_windows_give_no_outputs_and_bad_shapes_are_named() -> None:
    network = build_network(
        look_back=5, n_features=1, units=4, dropout=0.0, seed=1, learning_rate=1e-3, name="t"
    )
    weights = network.get_weights()
    assert network_outputs(weights, np.zeros((0, 5, 1))).shape == (0,)
    with pytest.raises(ValueError, match="input feature"):
        network_outputs(weights, np.zeros((3, 5, 2)))
    with pytest.raises(ValueError, match="weight arrays"):
        network_outputs(weights[:3], np.zeros((3, 5, 1)))


@pytest.mark.parametrize("features", [1, 3])
def test_many_windows_go_step_by_step_with_the_same_bits(monkeypatch, features) -> None:
    """Past PROJECTION_FLOATS the input projection is computed one step at a time (bounded
    memory); every published number must stay what the all-at-once product gave."""
    import lstm_model.inference as inference

    rng = np.random.default_rng(5)
    units, look_back = 16, 10
    weights = [
        rng.normal(0, 0.3, (features, 4 * units)).astype("float32"),
        rng.normal(0, 0.3, (units, 4 * units)).astype("float32"),
        rng.normal(0, 0.1, 4 * units).astype("float32"),
        rng.normal(0, 0.3, (units, 1)).astype("float32"),
        rng.normal(0, 0.1, 1).astype("float32"),
    ]
    windows = rng.normal(0, 1, (3001, look_back, features)).astype("float32")
    at_once = network_outputs(weights, windows)
    monkeypatch.setattr(inference, "PROJECTION_FLOATS", 0)
    step_by_step = network_outputs(weights, windows)
    assert step_by_step.tobytes() == at_once.tobytes()
    assert np.abs(at_once).max() > 0.1
