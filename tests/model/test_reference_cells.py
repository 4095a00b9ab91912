"""The NumPy reference cells against Keras and against numerical gradients."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from lstm_model.reference_cells import (
    KERAS_LSTM_GATE_ORDER,
    GateParams,
    LSTMParams,
    RNNParams,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    lstm_params_from_keras,
    lstm_params_to_keras_weights,
    rnn_backward,
    rnn_cell_backward,
    rnn_cell_forward,
    rnn_forward,
    rnn_params_from_keras,
    rnn_params_to_keras_weights,
)

BATCH, TIME, N_X, N_H = 3, 5, 4, 6
KERAS_ATOL = 1e-5
GRAD_RTOL = 1e-7


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keras() -> ModuleType:
    """Keras, imported lazily so the pure-NumPy tests never pay for TensorFlow."""
    return pytest.importorskip("keras")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


def _f32(a: np.ndarray) -> np.ndarray:
    """Rounds to float32 and back, so NumPy and Keras see bit-identical numbers."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _random_rnn(rng: np.random.Generator, n_x: int = N_X, n_h: int = N_H) -> RNNParams:
    return RNNParams(
        w_x=_f32(rng.normal(0, 0.5, (n_x, n_h))),
        w_h=_f32(rng.normal(0, 0.5, (n_h, n_h))),
        b=_f32(rng.normal(0, 0.3, n_h)),
    )


def _random_lstm(rng: np.random.Generator, n_x: int = N_X, n_h: int = N_H) -> LSTMParams:
    return LSTMParams(*(_random_rnn(rng, n_x, n_h) for _ in KERAS_LSTM_GATE_ORDER))


def _keras_out(outputs: object) -> list[np.ndarray]:
    return [np.asarray(o, dtype=np.float64) for o in outputs]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- Keras parity


@pytest.mark.parametrize("with_initial_state", [False, True])
def test_rnn_forward_matches_keras_simple_rnn(
    keras: ModuleType, rng: np.random.Generator, with_initial_state: bool
) -> None:
    x = _f32(rng.normal(size=(BATCH, TIME, N_X)))
    h0 = _f32(rng.normal(0, 0.5, (BATCH, N_H))) if with_initial_state else None
    layer = keras.layers.SimpleRNN(N_H, return_sequences=True, return_state=True)
    layer.build((None, TIME, N_X))
    params = _random_rnn(rng)
    layer.set_weights([w.astype(np.float32) for w in rnn_params_to_keras_weights(params)])

    kwargs = {} if h0 is None else {"initial_state": [h0.astype(np.float32)]}
    seq_k, h_last_k = _keras_out(layer(x.astype(np.float32), **kwargs))
    h, caches = rnn_forward(x, h0, rnn_params_from_keras(layer))

    assert h.shape == (BATCH, TIME, N_H)
    assert len(caches) == TIME
    np.testing.assert_allclose(h, seq_k, atol=KERAS_ATOL, rtol=0)
    np.testing.assert_allclose(h[:, -1], h_last_k, atol=KERAS_ATOL, rtol=0)


def test_rnn_forward_matches_keras_without_bias(
    keras: ModuleType, rng: np.random.Generator
) -> None:
    x = _f32(rng.normal(size=(BATCH, TIME, N_X)))
    layer = keras.layers.SimpleRNN(N_H, use_bias=False, return_sequences=True)
    seq_k = np.asarray(layer(x.astype(np.float32)), dtype=np.float64)
    params = rnn_params_from_keras(layer)
    np.testing.assert_array_equal(params.b, np.zeros(N_H))
    np.testing.assert_allclose(rnn_forward(x, None, params)[0], seq_k, atol=KERAS_ATOL, rtol=0)


@pytest.mark.parametrize("with_initial_state", [False, True])
def test_lstm_forward_matches_keras_lstm(
    keras: ModuleType, rng: np.random.Generator, with_initial_state: bool
) -> None:
    x = _f32(rng.normal(size=(BATCH, TIME, N_X)))
    h0 = _f32(rng.normal(0, 0.5, (BATCH, N_H))) if with_initial_state else None
    c0 = _f32(rng.normal(0, 0.5, (BATCH, N_H))) if with_initial_state else None
    layer = keras.layers.LSTM(N_H, return_sequences=True, return_state=True)
    layer.build((None, TIME, N_X))
    params = _random_lstm(rng)
    layer.set_weights([w.astype(np.float32) for w in lstm_params_to_keras_weights(params)])

    kwargs = {}
    if with_initial_state:
        kwargs["initial_state"] = [h0.astype(np.float32), c0.astype(np.float32)]
    seq_k, h_last_k, c_last_k = _keras_out(layer(x.astype(np.float32), **kwargs))
    h, c, caches = lstm_forward(x, h0, c0, lstm_params_from_keras(layer))

    assert h.shape == c.shape == (BATCH, TIME, N_H)
    assert len(caches) == TIME
    np.testing.assert_allclose(h, seq_k, atol=KERAS_ATOL, rtol=0)
    np.testing.assert_allclose(h[:, -1], h_last_k, atol=KERAS_ATOL, rtol=0)
    np.testing.assert_allclose(c[:, -1], c_last_k, atol=KERAS_ATOL, rtol=0)


def test_keras_lstm_gate_order_is_i_f_c_o(keras: ModuleType, rng: np.random.Generator) -> None:
    """Two independent checks of the i, f, c, o block order in Keras' LSTM weights."""
    # 1. unit_forget_bias=True initialises exactly the forget block of the bias to 1.
    layer = keras.layers.LSTM(N_H, return_sequences=True)
    layer.build((None, TIME, N_X))
    fresh = lstm_params_from_keras(layer)
    for name, gate in fresh.gates():
        np.testing.assert_array_equal(gate.b, np.full(N_H, 1.0 if name == "f" else 0.0))

    # 2. Reading the blocks in any other order breaks the match with Keras.
    x = _f32(rng.normal(size=(BATCH, TIME, N_X)))
    params = _random_lstm(rng)
    layer.set_weights([w.astype(np.float32) for w in lstm_params_to_keras_weights(params)])
    seq_k = np.asarray(layer(x.astype(np.float32)), dtype=np.float64)
    assert np.max(np.abs(lstm_forward(x, None, None, params)[0] - seq_k)) < KERAS_ATOL
    swapped = LSTMParams(i=params.i, f=params.c, c=params.f, o=params.o)  # i, c, f, o
    assert np.max(np.abs(lstm_forward(x, None, None, swapped)[0] - seq_k)) > 1e-2


def test_keras_layer_with_other_activation_is_rejected(keras: ModuleType) -> None:
    relu_rnn = keras.layers.SimpleRNN(N_H, activation="relu")
    relu_rnn.build((None, TIME, N_X))
    with pytest.raises(ValueError, match=r"activation must be 'tanh'.*'relu'"):
        rnn_params_from_keras(relu_rnn)
    hard_lstm = keras.layers.LSTM(N_H, recurrent_activation="hard_sigmoid")
    hard_lstm.build((None, TIME, N_X))
    with pytest.raises(ValueError, match="recurrent_activation must be 'sigmoid'"):
        lstm_params_from_keras(hard_lstm)
    with pytest.raises(ValueError, match="no weights yet"):
        lstm_params_from_keras(keras.layers.LSTM(N_H))


# --------------------------------------------------------------------------- gradients


def _numerical_grad(loss: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``loss()`` w.r.t. every entry of ``array`` (mutated in place)."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + eps
        plus = loss()
        array[idx] = saved - eps
        minus = loss()
        array[idx] = saved
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def _rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / denom) if denom > 0 else 0.0


def _assert_grads_close(analytic: dict[str, np.ndarray], numeric: dict[str, np.ndarray]) -> None:
    errors = {name: _rel_error(analytic[name], numeric[name]) for name in numeric}
    assert all(np.any(g != 0) for g in analytic.values()), "degenerate test: a zero gradient"
    assert max(errors.values()) < GRAD_RTOL, errors


def test_rnn_cell_backward_matches_numerical_gradients(rng: np.random.Generator) -> None:
    n_x, n_h, batch = 3, 4, 2
    p = _random_rnn(rng, n_x, n_h)
    arrays = {
        "x_t": rng.normal(size=(batch, n_x)),
        "h_prev": rng.normal(size=(batch, n_h)),
        "w_x": p.w_x.copy(),
        "w_h": p.w_h.copy(),
        "b": p.b.copy(),
    }
    upstream = rng.normal(size=(batch, n_h))

    def params() -> RNNParams:
        return RNNParams(w_x=arrays["w_x"], w_h=arrays["w_h"], b=arrays["b"])

    def loss() -> float:
        return float(
            np.sum(upstream * rnn_cell_forward(arrays["x_t"], arrays["h_prev"], params())[0])
        )

    _, cache = rnn_cell_forward(arrays["x_t"], arrays["h_prev"], params())
    g = rnn_cell_backward(upstream, cache)
    analytic = {
        "x_t": g.dx_t,
        "h_prev": g.dh_prev,
        "w_x": g.params.w_x,
        "w_h": g.params.w_h,
        "b": g.params.b,
    }
    _assert_grads_close(analytic, {k: _numerical_grad(loss, a) for k, a in arrays.items()})


def test_rnn_backward_matches_numerical_gradients(rng: np.random.Generator) -> None:
    batch, time, n_x, n_h = 2, 4, 3, 4
    p = _random_rnn(rng, n_x, n_h)
    arrays = {
        "x": rng.normal(size=(batch, time, n_x)),
        "h0": rng.normal(0, 0.5, (batch, n_h)),
        "w_x": p.w_x.copy(),
        "w_h": p.w_h.copy(),
        "b": p.b.copy(),
    }
    upstream = rng.normal(size=(batch, time, n_h))  # loss = sum(upstream * h_1..T)

    def params() -> RNNParams:
        return RNNParams(w_x=arrays["w_x"], w_h=arrays["w_h"], b=arrays["b"])

    def loss() -> float:
        return float(np.sum(upstream * rnn_forward(arrays["x"], arrays["h0"], params())[0]))

    _, caches = rnn_forward(arrays["x"], arrays["h0"], params())
    g = rnn_backward(upstream, caches)
    analytic = {"x": g.dx, "h0": g.dh0, "w_x": g.params.w_x, "w_h": g.params.w_h, "b": g.params.b}
    _assert_grads_close(analytic, {k: _numerical_grad(loss, a) for k, a in arrays.items()})


def _lstm_arrays(
    rng: np.random.Generator, n_x: int, n_h: int
) -> tuple[dict[str, np.ndarray], Callable[[], LSTMParams]]:
    """Per-gate weight arrays (mutable, for finite differences) and a params builder."""
    p = _random_lstm(rng, n_x, n_h)
    arrays = {
        f"{gate}.{field}": getattr(params, field).copy()
        for gate, params in p.gates()
        for field in ("w_x", "w_h", "b")
    }

    def build() -> LSTMParams:
        return LSTMParams(
            **{
                gate: GateParams(arrays[f"{gate}.w_x"], arrays[f"{gate}.w_h"], arrays[f"{gate}.b"])
                for gate in KERAS_LSTM_GATE_ORDER
            }
        )

    return arrays, build


def _lstm_param_grads(grads: LSTMParams) -> dict[str, np.ndarray]:
    return {
        f"{gate}.{field}": getattr(params, field)
        for gate, params in grads.gates()
        for field in ("w_x", "w_h", "b")
    }


def test_lstm_cell_backward_matches_numerical_gradients(rng: np.random.Generator) -> None:
    batch, n_x, n_h = 2, 3, 4
    arrays, build = _lstm_arrays(rng, n_x, n_h)
    arrays |= {
        "x_t": rng.normal(size=(batch, n_x)),
        "h_prev": rng.normal(0, 0.5, (batch, n_h)),
        "c_prev": rng.normal(0, 0.5, (batch, n_h)),
    }
    dh_up, dc_up = rng.normal(size=(batch, n_h)), rng.normal(size=(batch, n_h))

    def forward() -> tuple[np.ndarray, np.ndarray, object]:
        return lstm_cell_forward(arrays["x_t"], arrays["h_prev"], arrays["c_prev"], build())

    def loss() -> float:
        h, c, _ = forward()
        return float(np.sum(dh_up * h) + np.sum(dc_up * c))

    g = lstm_cell_backward(dh_up, dc_up, forward()[2])
    analytic = _lstm_param_grads(g.params) | {
        "x_t": g.dx_t,
        "h_prev": g.dh_prev,
        "c_prev": g.dc_prev,
    }
    _assert_grads_close(analytic, {k: _numerical_grad(loss, a) for k, a in arrays.items()})


def test_lstm_backward_matches_numerical_gradients(rng: np.random.Generator) -> None:
    batch, time, n_x, n_h = 2, 4, 3, 3
    arrays, build = _lstm_arrays(rng, n_x, n_h)
    arrays |= {
        "x": rng.normal(size=(batch, time, n_x)),
        "h0": rng.normal(0, 0.5, (batch, n_h)),
        "c0": rng.normal(0, 0.5, (batch, n_h)),
    }
    dh_up = rng.normal(size=(batch, time, n_h))
    dc_last = rng.normal(size=(batch, n_h))

    def loss() -> float:
        h, c, _ = lstm_forward(arrays["x"], arrays["h0"], arrays["c0"], build())
        return float(np.sum(dh_up * h) + np.sum(dc_last * c[:, -1]))

    _, _, caches = lstm_forward(arrays["x"], arrays["h0"], arrays["c0"], build())
    g = lstm_backward(dh_up, caches, dc_last=dc_last)
    analytic = _lstm_param_grads(g.params) | {"x": g.dx, "h0": g.dh0, "c0": g.dc0}
    _assert_grads_close(analytic, {k: _numerical_grad(loss, a) for k, a in arrays.items()})


# --------------------------------------------------------------------------- shapes & API


def test_cell_shapes_and_sequence_consistency(rng: np.random.Generator) -> None:
    rnn, lstm = _random_rnn(rng), _random_lstm(rng)
    x = rng.normal(size=(BATCH, TIME, N_X))
    h_rnn, _ = rnn_forward(x, None, rnn)
    h_lstm, c_lstm, _ = lstm_forward(x, np.zeros((BATCH, N_H)), None, lstm)

    h, c = np.zeros((BATCH, N_H)), np.zeros((BATCH, N_H))
    h_r = np.zeros((BATCH, N_H))
    for t in range(TIME):
        h_r, cache = rnn_cell_forward(x[:, t], h_r, rnn)
        h, c, lstm_cache = lstm_cell_forward(x[:, t], h, c, lstm)
        assert h_r.shape == h.shape == c.shape == (BATCH, N_H)
        assert lstm_cache.i.shape == lstm_cache.g.shape == (BATCH, N_H)
        assert cache.x_t.shape == (BATCH, N_X)
        np.testing.assert_array_equal(h_rnn[:, t], h_r)
        np.testing.assert_array_equal(h_lstm[:, t], h)
        np.testing.assert_array_equal(c_lstm[:, t], c)
    assert np.all(np.abs(h_lstm) < 1)


def test_keras_weight_round_trip(rng: np.random.Generator) -> None:
    rnn, lstm = _random_rnn(rng), _random_lstm(rng)
    kernel, recurrent, bias = lstm_params_to_keras_weights(lstm)
    assert kernel.shape == (N_X, 4 * N_H)
    assert recurrent.shape == (N_H, 4 * N_H)
    assert bias.shape == (4 * N_H,)
    np.testing.assert_array_equal(kernel[:, N_H : 2 * N_H], lstm.f.w_x)  # block 1 is f
    back = lstm_params_from_keras([kernel, recurrent, bias])
    for (name, a), (_, b) in zip(lstm.gates(), back.gates(), strict=True):
        for field in ("w_x", "w_h", "b"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=name)
    rnn_back = rnn_params_from_keras(rnn_params_to_keras_weights(rnn))
    np.testing.assert_array_equal(rnn_back.w_h, rnn.w_h)
    assert (rnn_back.n_x, rnn_back.n_h, back.n_x, back.n_h) == (N_X, N_H, N_X, N_H)


def test_zeros_and_float64_conversion() -> None:
    params = RNNParams.zeros(2, 3)
    assert isinstance(params, RNNParams)
    assert isinstance(LSTMParams.zeros(2, 3).o, GateParams)
    ints = RNNParams(w_x=[[1, 2]], w_h=[[0, 0], [0, 0]], b=[0, 0])
    assert ints.w_x.dtype == np.float64
    h, _ = rnn_cell_forward(np.ones((1, 1), dtype=np.float32), np.zeros((1, 2)), ints)
    assert h.dtype == np.float64


RNN = RNNParams.zeros(N_X, N_H)
LSTM = LSTMParams.zeros(N_X, N_H)
X = np.zeros((BATCH, TIME, N_X))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rnn_forward(X[0], None, RNN), r"x must be 3-D, got shape \(5, 4\)"),
        (
            lambda: rnn_forward(X[..., :2], None, RNN),
            "x has 2 features but the params expect n_x=4",
        ),
        (lambda: rnn_forward(X[:, :0], None, RNN), "at least one sample and one time step"),
        (lambda: rnn_forward(X * np.nan, None, RNN), "x contains NaN"),
        (
            lambda: rnn_forward(X, np.zeros((BATCH + 1, N_H)), RNN),
            r"h0 must have shape \(batch, n_h\)=\(3, 6\), got \(4, 6\)",
        ),
        (
            lambda: lstm_forward(X, None, np.zeros((BATCH, N_H + 1)), LSTM),
            r"c0 must have shape \(batch, n_h\)=\(3, 6\)",
        ),
        (
            lambda: rnn_cell_forward(X[:, 0], np.zeros((BATCH, 2)), RNN),
            r"h_prev must have shape \(batch, n_h\)=\(3, 6\), got \(3, 2\)",
        ),
        (
            lambda: lstm_cell_forward(X[:, 0], np.zeros((BATCH, N_H)), np.zeros(N_H), LSTM),
            "c_prev must be 2-D",
        ),
        (
            lambda: RNNParams(w_x=np.zeros((2, 3)), w_h=np.zeros((3, 2)), b=np.zeros(3)),
            r"w_h must have shape \(n_h, n_h\)=\(3, 3\), got \(3, 2\)",
        ),
        (
            lambda: RNNParams(w_x=np.zeros((2, 3)), w_h=np.zeros((3, 3)), b=np.zeros(4)),
            r"b must have shape \(n_h,\)=\(3,\), got \(4,\)",
        ),
        (
            lambda: LSTMParams(
                i=GateParams.zeros(2, 3),
                f=GateParams.zeros(2, 3),
                c=GateParams.zeros(2, 4),
                o=GateParams.zeros(2, 3),
            ),
            "all LSTM gates must have the same",
        ),
        (
            lambda: rnn_backward(np.zeros((BATCH, TIME, N_H)), ()),
            "caches is empty",
        ),
        (
            lambda: rnn_backward(np.zeros((BATCH, TIME - 1, N_H)), rnn_forward(X, None, RNN)[1]),
            r"dh must have shape \(batch, time, n_h\)=\(3, 5, 6\), got \(3, 4, 6\)",
        ),
        (
            lambda: lstm_backward(
                np.zeros((BATCH, TIME, N_H)),
                lstm_forward(X, None, None, LSTM)[2],
                dc_last=np.zeros((1, N_H)),
            ),
            r"dc_last must have shape \(batch, n_h\)",
        ),
        (
            lambda: rnn_cell_backward(np.zeros((1, N_H)), rnn_forward(X, None, RNN)[1][0]),
            r"dh_next must have shape \(3, 6\), got \(1, 6\)",
        ),
        (
            lambda: lstm_params_from_keras([np.zeros((N_X, 10)), np.zeros((N_H, 10))]),
            r"LSTM kernel must be \(n_x, 4 \* n_h\)",
        ),
        (
            lambda: lstm_params_from_keras([np.zeros((N_X, 8)), np.zeros((3, 8)), np.zeros(8)]),
            r"recurrent_kernel must be \(n_h, 4 \* n_h\)=\(2, 8\)",
        ),
        (lambda: rnn_params_from_keras([np.zeros((2, 2))]), "got 1 arrays"),
    ],
)
def test_validation_errors_are_clear(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_non_numeric_inputs_raise_type_error() -> None:
    with pytest.raises(TypeError, match="x must be a numeric array"):
        rnn_forward([["a"]], None, RNN)
    with pytest.raises(TypeError, match="expected a Keras SimpleRNN layer/cell"):
        rnn_params_from_keras(42)
