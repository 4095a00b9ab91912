"""Reference NumPy RNN and LSTM cells, written straight from the equations.

These are the "step by step" walk-throughs of the classic recurrent-network tutorial
(a vanilla RNN cell with its forward and backward pass, an LSTM cell forward pass),
re-done in float64 NumPy so they can serve as an executable specification of what
``keras.layers.SimpleRNN`` and ``keras.layers.LSTM`` compute. They are slow and meant
for tests, teaching and debugging -- never for training.

Conventions (chosen to match Keras, and deliberately different from the tutorial):

* Row vectors, batch first. A step input ``x_t`` is ``(batch, n_x)``, a hidden or cell
  state is ``(batch, n_h)`` and a sequence ``x`` is ``(batch, time, n_x)`` -- the Keras
  layout. (The tutorial uses column vectors ``(n_x, m)`` and ``(n_x, m, T_x)``.)
* Weights act on the right: ``x_t @ w_x`` with ``w_x`` of shape ``(n_x, n_h)`` and
  ``h @ w_h`` with ``w_h`` of shape ``(n_h, n_h)``; biases are ``(n_h,)``. This is the
  layout of Keras' ``kernel`` / ``recurrent_kernel`` / ``bias``.
* There is no output projection (the tutorial's ``y = softmax(W_ya a + b_y)``). Keras
  recurrent layers have none either; a ``Dense`` head is a separate layer.
* Sequence outputs stack the hidden states ``h_1 .. h_T`` on axis 1, so the final state
  is ``h[:, -1]`` (what Keras returns with ``return_state=True``).

Simple RNN (``tanh`` activation)::

    h_t = tanh(x_t W_x + h_{t-1} W_h + b)

    backward, with dh_t the total gradient reaching h_t and dz = dh_t * (1 - h_t**2):
    dW_x += x_t^T dz      dW_h += h_{t-1}^T dz      db += sum_batch(dz)
    dx_t  = dz W_x^T      dh_{t-1} = dz W_h^T  (+ the loss' own gradient at t-1)

LSTM (sigmoid gates, ``tanh`` activation; Keras gate order i, f, c, o)::

    i_t = sigmoid(x_t W_xi + h_{t-1} W_hi + b_i)      input gate
    f_t = sigmoid(x_t W_xf + h_{t-1} W_hf + b_f)      forget gate
    g_t = tanh   (x_t W_xc + h_{t-1} W_hc + b_c)      candidate cell state (c~)
    o_t = sigmoid(x_t W_xo + h_{t-1} W_ho + b_o)      output gate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

    backward, with dh_t, dc_t the total gradients reaching h_t and c_t:
    dc  = dc_t + dh_t * o_t * (1 - tanh(c_t)**2)
    dzo = dh_t * tanh(c_t) * o_t (1 - o_t)     dzi = dc * g_t * i_t (1 - i_t)
    dzf = dc * c_{t-1} * f_t (1 - f_t)         dzg = dc * i_t * (1 - g_t**2)
    dc_{t-1} = dc * f_t, and each gate's dz feeds dW_x, dW_h, db, dx_t, dh_{t-1}
    exactly as in the simple RNN.

Keras 3 stores an LSTM as ``kernel (n_x, 4 n_h)``, ``recurrent_kernel (n_h, 4 n_h)``
and ``bias (4 n_h,)``, the four column blocks being the i, f, c, o gates in that order
(``keras.src.layers.rnn.lstm.LSTMCell.call`` splits them as ``k_i, k_f, k_c, k_o``).
A ``SimpleRNN`` stores ``kernel (n_x, n_h)``, ``recurrent_kernel (n_h, n_h)`` and
``bias (n_h,)``. :func:`rnn_params_from_keras` and :func:`lstm_params_from_keras` read
those; the ``*_to_keras_weights`` functions write them back.

This module imports only NumPy; Keras layers are handled by duck typing
(``get_weights()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KERAS_LSTM_GATE_ORDER",
    "FloatArray",
    "GateParams",
    "LSTMCellCache",
    "LSTMCellGradients",
    "LSTMGradients",
    "LSTMParams",
    "RNNCellCache",
    "RNNCellGradients",
    "RNNGradients",
    "RNNParams",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "lstm_params_from_keras",
    "lstm_params_to_keras_weights",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_params_from_keras",
    "rnn_params_to_keras_weights",
]

FloatArray: TypeAlias = NDArray[np.float64]

#: Order of the four column blocks in a Keras LSTM ``kernel``/``recurrent_kernel``/``bias``.
KERAS_LSTM_GATE_ORDER: tuple[str, str, str, str] = ("i", "f", "c", "o")


# --------------------------------------------------------------------------- helpers


def _as_float(value: ArrayLike, name: str, ndim: int) -> FloatArray:
    """Converts ``value`` to a float64 array with exactly ``ndim`` dimensions."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _sigmoid(z: FloatArray) -> FloatArray:
    """Logistic sigmoid, written via ``tanh`` so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _check_step(x_t: FloatArray, h: FloatArray, n_x: int, n_h: int, h_name: str) -> None:
    """Checks that a step input and a state agree with each other and with the params."""
    if x_t.shape[1] != n_x:
        raise ValueError(f"x_t has {x_t.shape[1]} features but the params expect n_x={n_x}")
    if h.shape != (x_t.shape[0], n_h):
        raise ValueError(
            f"{h_name} must have shape (batch, n_h)=({x_t.shape[0]}, {n_h}), got {h.shape}"
        )


def _initial_state(value: ArrayLike | None, name: str, batch: int, n_h: int) -> FloatArray:
    """Returns a validated ``(batch, n_h)`` initial state, zeros when ``value`` is None."""
    if value is None:
        return np.zeros((batch, n_h))
    state = _as_float(value, name, 2)
    if state.shape != (batch, n_h):
        raise ValueError(f"{name} must have shape (batch, n_h)=({batch}, {n_h}), got {state.shape}")
    return state


def _sequence(x: ArrayLike, n_x: int) -> FloatArray:
    """Validates a ``(batch, time, n_x)`` input sequence."""
    seq = _as_float(x, "x", 3)
    batch, time, features = seq.shape
    if batch == 0 or time == 0:
        raise ValueError(f"x must have at least one sample and one time step, got {seq.shape}")
    if features != n_x:
        raise ValueError(f"x has {features} features but the params expect n_x={n_x}")
    return seq


# --------------------------------------------------------------------------- params


@dataclass(frozen=True, slots=True, eq=False)
class GateParams:
    """One affine map ``x_t @ w_x + h_prev @ w_h + b`` (an RNN layer or an LSTM gate).

    Attributes:
        w_x: Input weights, shape ``(n_x, n_h)``.
        w_h: Recurrent weights, shape ``(n_h, n_h)``.
        b: Bias, shape ``(n_h,)``.
    """

    w_x: FloatArray
    w_h: FloatArray
    b: FloatArray

    def __post_init__(self) -> None:
        w_x = _as_float(self.w_x, "w_x", 2)
        w_h = _as_float(self.w_h, "w_h", 2)
        b = _as_float(self.b, "b", 1)
        n_x, n_h = w_x.shape
        if n_x == 0 or n_h == 0:
            raise ValueError(f"w_x must be (n_x, n_h) with n_x, n_h >= 1, got {w_x.shape}")
        if w_h.shape != (n_h, n_h):
            raise ValueError(f"w_h must have shape (n_h, n_h)=({n_h}, {n_h}), got {w_h.shape}")
        if b.shape != (n_h,):
            raise ValueError(f"b must have shape (n_h,)=({n_h},), got {b.shape}")
        object.__setattr__(self, "w_x", w_x)
        object.__setattr__(self, "w_h", w_h)
        object.__setattr__(self, "b", b)

    @property
    def n_x(self) -> int:
        """Number of input features."""
        return int(self.w_x.shape[0])

    @property
    def n_h(self) -> int:
        """Number of hidden units."""
        return int(self.w_x.shape[1])

    def pre_activation(self, x_t: FloatArray, h_prev: FloatArray) -> FloatArray:
        """Returns ``x_t @ w_x + h_prev @ w_h + b``, shape ``(batch, n_h)``."""
        return x_t @ self.w_x + h_prev @ self.w_h + self.b

    @classmethod
    def zeros(cls, n_x: int, n_h: int) -> Self:
        """Returns all-zero params of the given size (e.g. to accumulate gradients)."""
        return cls(np.zeros((n_x, n_h)), np.zeros((n_h, n_h)), np.zeros(n_h))


@dataclass(frozen=True, slots=True, eq=False)
class RNNParams(GateParams):
    """Parameters of a simple (Elman) RNN: ``h_t = tanh(x_t @ w_x + h_{t-1} @ w_h + b)``.

    Same fields and shapes as :class:`GateParams`; the layout of Keras ``SimpleRNN``.
    """


@dataclass(frozen=True, slots=True, eq=False)
class LSTMParams:
    """Parameters of an LSTM, one :class:`GateParams` per gate.

    Attributes:
        i: Input gate (sigmoid).
        f: Forget gate (sigmoid).
        c: Candidate cell state ``c~`` (tanh); called ``g`` in the equations.
        o: Output gate (sigmoid).
    """

    i: GateParams
    f: GateParams
    c: GateParams
    o: GateParams

    def __post_init__(self) -> None:
        shapes = {name: (gate.n_x, gate.n_h) for name, gate in self.gates()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"all LSTM gates must have the same (n_x, n_h); got {shapes}")

    @property
    def n_x(self) -> int:
        """Number of input features."""
        return self.i.n_x

    @property
    def n_h(self) -> int:
        """Number of hidden units."""
        return self.i.n_h

    def gates(self) -> tuple[tuple[str, GateParams], ...]:
        """Returns ``(name, params)`` pairs in Keras gate order i, f, c, o."""
        return (("i", self.i), ("f", self.f), ("c", self.c), ("o", self.o))

    @classmethod
    def zeros(cls, n_x: int, n_h: int) -> LSTMParams:
        """Returns all-zero params of the given size."""
        return cls(*(GateParams.zeros(n_x, n_h) for _ in KERAS_LSTM_GATE_ORDER))


# --------------------------------------------------------------------------- caches & grads


@dataclass(frozen=True, slots=True, eq=False)
class RNNCellCache:
    """Everything :func:`rnn_cell_backward` needs from one forward step.

    Attributes:
        x_t: Step input, ``(batch, n_x)``.
        h_prev: Previous hidden state, ``(batch, n_h)``.
        h_next: New hidden state ``tanh(z)``, ``(batch, n_h)``.
        params: The parameters used.
    """

    x_t: FloatArray
    h_prev: FloatArray
    h_next: FloatArray
    params: RNNParams


@dataclass(frozen=True, slots=True, eq=False)
class RNNCellGradients:
    """Gradients of one RNN step.

    Attributes:
        dx_t: Gradient w.r.t. the step input, ``(batch, n_x)``.
        dh_prev: Gradient w.r.t. the previous hidden state, ``(batch, n_h)``.
        params: Gradients w.r.t. ``w_x``, ``w_h`` and ``b``, in an :class:`RNNParams`.
    """

    dx_t: FloatArray
    dh_prev: FloatArray
    params: RNNParams


@dataclass(frozen=True, slots=True, eq=False)
class RNNGradients:
    """Gradients of a whole RNN sequence (backpropagation through time).

    Attributes:
        dx: Gradient w.r.t. the inputs, ``(batch, time, n_x)``.
        dh0: Gradient w.r.t. the initial hidden state, ``(batch, n_h)``.
        params: Gradients w.r.t. ``w_x``, ``w_h`` and ``b``, summed over time.
    """

    dx: FloatArray
    dh0: FloatArray
    params: RNNParams


@dataclass(frozen=True, slots=True, eq=False)
class LSTMCellCache:
    """Everything :func:`lstm_cell_backward` needs from one LSTM step.

    Attributes:
        x_t: Step input, ``(batch, n_x)``.
        h_prev: Previous hidden state, ``(batch, n_h)``.
        c_prev: Previous cell state, ``(batch, n_h)``.
        i: Input-gate activation, ``(batch, n_h)``.
        f: Forget-gate activation, ``(batch, n_h)``.
        g: Candidate cell state ``c~``, ``(batch, n_h)``.
        o: Output-gate activation, ``(batch, n_h)``.
        c_next: New cell state, ``(batch, n_h)``.
        h_next: New hidden state, ``(batch, n_h)``.
        params: The parameters used.
    """

    x_t: FloatArray
    h_prev: FloatArray
    c_prev: FloatArray
    i: FloatArray
    f: FloatArray
    g: FloatArray
    o: FloatArray
    c_next: FloatArray
    h_next: FloatArray
    params: LSTMParams


@dataclass(frozen=True, slots=True, eq=False)
class LSTMCellGradients:
    """Gradients of one LSTM step.

    Attributes:
        dx_t: Gradient w.r.t. the step input, ``(batch, n_x)``.
        dh_prev: Gradient w.r.t. the previous hidden state, ``(batch, n_h)``.
        dc_prev: Gradient w.r.t. the previous cell state, ``(batch, n_h)``.
        params: Gradients w.r.t. every gate's weights, in an :class:`LSTMParams`.
    """

    dx_t: FloatArray
    dh_prev: FloatArray
    dc_prev: FloatArray
    params: LSTMParams


@dataclass(frozen=True, slots=True, eq=False)
class LSTMGradients:
    """Gradients of a whole LSTM sequence.

    Attributes:
        dx: Gradient w.r.t. the inputs, ``(batch, time, n_x)``.
        dh0: Gradient w.r.t. the initial hidden state, ``(batch, n_h)``.
        dc0: Gradient w.r.t. the initial cell state, ``(batch, n_h)``.
        params: Gradients w.r.t. every gate's weights, summed over time.
    """

    dx: FloatArray
    dh0: FloatArray
    dc0: FloatArray
    params: LSTMParams


# --------------------------------------------------------------------------- simple RNN


def rnn_cell_forward(
    x_t: ArrayLike, h_prev: ArrayLike, params: RNNParams
) -> tuple[FloatArray, RNNCellCache]:
    """Runs one simple-RNN step: ``h_next = tanh(x_t @ w_x + h_prev @ w_h + b)``.

    Args:
        x_t: Step input, shape ``(batch, n_x)``.
        h_prev: Previous hidden state, shape ``(batch, n_h)``.
        params: The RNN parameters.

    Returns:
        ``(h_next, cache)``: the new hidden state ``(batch, n_h)`` and the cache for
        :func:`rnn_cell_backward`.

    Raises:
        ValueError: If shapes disagree with each other or with ``params``.
    """
    x_arr = _as_float(x_t, "x_t", 2)
    h_arr = _as_float(h_prev, "h_prev", 2)
    _check_step(x_arr, h_arr, params.n_x, params.n_h, "h_prev")
    h_next = np.tanh(params.pre_activation(x_arr, h_arr))
    return h_next, RNNCellCache(x_t=x_arr, h_prev=h_arr, h_next=h_next, params=params)


def rnn_cell_backward(dh_next: ArrayLike, cache: RNNCellCache) -> RNNCellGradients:
    """Backpropagates through one simple-RNN step.

    Args:
        dh_next: Gradient of the loss w.r.t. ``h_next``, shape ``(batch, n_h)``.
        cache: The cache returned by :func:`rnn_cell_forward`.

    Returns:
        Gradients w.r.t. ``x_t``, ``h_prev`` and the parameters.

    Raises:
        ValueError: If ``dh_next`` does not have the shape of ``h_next``.
    """
    dh = _as_float(dh_next, "dh_next", 2)
    if dh.shape != cache.h_next.shape:
        raise ValueError(f"dh_next must have shape {cache.h_next.shape}, got {dh.shape}")
    params = cache.params
    dz = dh * (1.0 - cache.h_next**2)
    grads = RNNParams(w_x=cache.x_t.T @ dz, w_h=cache.h_prev.T @ dz, b=dz.sum(axis=0))
    return RNNCellGradients(dx_t=dz @ params.w_x.T, dh_prev=dz @ params.w_h.T, params=grads)


def rnn_forward(
    x: ArrayLike, h0: ArrayLike | None, params: RNNParams
) -> tuple[FloatArray, tuple[RNNCellCache, ...]]:
    """Runs a simple RNN over a whole sequence, like ``SimpleRNN(return_sequences=True)``.

    Args:
        x: Inputs, shape ``(batch, time, n_x)`` (batch first, as in Keras).
        h0: Initial hidden state ``(batch, n_h)``; ``None`` means zeros (the Keras default).
        params: The RNN parameters.

    Returns:
        ``(h, caches)``: hidden states ``h_1 .. h_T`` stacked as ``(batch, time, n_h)``
        (the final state is ``h[:, -1]``) and one :class:`RNNCellCache` per time step.

    Raises:
        ValueError: If shapes disagree with each other or with ``params``.
    """
    seq = _sequence(x, params.n_x)
    batch, time, _ = seq.shape
    h = _initial_state(h0, "h0", batch, params.n_h)
    states = np.empty((batch, time, params.n_h))
    caches: list[RNNCellCache] = []
    for t in range(time):
        h, cache = rnn_cell_forward(seq[:, t, :], h, params)
        states[:, t, :] = h
        caches.append(cache)
    return states, tuple(caches)


def rnn_backward(dh: ArrayLike, caches: Sequence[RNNCellCache]) -> RNNGradients:
    """Backpropagation through time for :func:`rnn_forward`.

    Args:
        dh: Gradient of the loss w.r.t. every hidden state ``h_1 .. h_T``, shape
            ``(batch, time, n_h)``. For a loss on the final state only, fill
            ``dh[:, -1]`` and leave the rest zero.
        caches: The caches returned by :func:`rnn_forward`.

    Returns:
        Gradients w.r.t. ``x``, ``h0`` and the parameters (summed over time).

    Raises:
        ValueError: If ``caches`` is empty or ``dh`` has the wrong shape.
    """
    if len(caches) == 0:
        raise ValueError("caches is empty; pass the caches returned by rnn_forward")
    params = caches[0].params
    batch = caches[0].x_t.shape[0]
    upstream = _as_float(dh, "dh", 3)
    expected = (batch, len(caches), params.n_h)
    if upstream.shape != expected:
        raise ValueError(f"dh must have shape (batch, time, n_h)={expected}, got {upstream.shape}")
    dx = np.empty((batch, len(caches), params.n_x))
    dw_x, dw_h, db = np.zeros_like(params.w_x), np.zeros_like(params.w_h), np.zeros(params.n_h)
    dh_carry = np.zeros((batch, params.n_h))
    for t in reversed(range(len(caches))):
        step = rnn_cell_backward(upstream[:, t, :] + dh_carry, caches[t])
        dx[:, t, :] = step.dx_t
        dh_carry = step.dh_prev
        dw_x += step.params.w_x
        dw_h += step.params.w_h
        db += step.params.b
    return RNNGradients(dx=dx, dh0=dh_carry, params=RNNParams(w_x=dw_x, w_h=dw_h, b=db))


# --------------------------------------------------------------------------- LSTM


def lstm_cell_forward(
    x_t: ArrayLike, h_prev: ArrayLike, c_prev: ArrayLike, params: LSTMParams
) -> tuple[FloatArray, FloatArray, LSTMCellCache]:
    """Runs one LSTM step (see the module docstring for the equations).

    Args:
        x_t: Step input, shape ``(batch, n_x)``.
        h_prev: Previous hidden state, shape ``(batch, n_h)``.
        c_prev: Previous cell state, shape ``(batch, n_h)``.
        params: The LSTM parameters.

    Returns:
        ``(h_next, c_next, cache)``: the new hidden and cell states, each
        ``(batch, n_h)``, and the cache for :func:`lstm_cell_backward`.

    Raises:
        ValueError: If shapes disagree with each other or with ``params``.
    """
    x_arr = _as_float(x_t, "x_t", 2)
    h_arr = _as_float(h_prev, "h_prev", 2)
    c_arr = _as_float(c_prev, "c_prev", 2)
    _check_step(x_arr, h_arr, params.n_x, params.n_h, "h_prev")
    _check_step(x_arr, c_arr, params.n_x, params.n_h, "c_prev")
    i = _sigmoid(params.i.pre_activation(x_arr, h_arr))
    f = _sigmoid(params.f.pre_activation(x_arr, h_arr))
    g = np.tanh(params.c.pre_activation(x_arr, h_arr))
    o = _sigmoid(params.o.pre_activation(x_arr, h_arr))
    c_next = f * c_arr + i * g
    h_next = o * np.tanh(c_next)
    cache = LSTMCellCache(
        x_t=x_arr,
        h_prev=h_arr,
        c_prev=c_arr,
        i=i,
        f=f,
        g=g,
        o=o,
        c_next=c_next,
        h_next=h_next,
        params=params,
    )
    return h_next, c_next, cache


def lstm_cell_backward(
    dh_next: ArrayLike, dc_next: ArrayLike, cache: LSTMCellCache
) -> LSTMCellGradients:
    """Backpropagates through one LSTM step.

    Args:
        dh_next: Gradient of the loss w.r.t. ``h_next``, shape ``(batch, n_h)``.
        dc_next: Gradient of the loss w.r.t. ``c_next`` arriving from later steps (not
            through ``h_next``), shape ``(batch, n_h)``.
        cache: The cache returned by :func:`lstm_cell_forward`.

    Returns:
        Gradients w.r.t. ``x_t``, ``h_prev``, ``c_prev`` and every gate's parameters.

    Raises:
        ValueError: If a gradient does not have the shape of the state it belongs to.
    """
    shape = cache.h_next.shape
    dh = _as_float(dh_next, "dh_next", 2)
    dc_in = _as_float(dc_next, "dc_next", 2)
    for name, arr in (("dh_next", dh), ("dc_next", dc_in)):
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    tanh_c = np.tanh(cache.c_next)
    dc = dc_in + dh * cache.o * (1.0 - tanh_c**2)
    dz = {
        "i": dc * cache.g * cache.i * (1.0 - cache.i),
        "f": dc * cache.c_prev * cache.f * (1.0 - cache.f),
        "c": dc * cache.i * (1.0 - cache.g**2),
        "o": dh * tanh_c * cache.o * (1.0 - cache.o),
    }
    dx_t = np.zeros_like(cache.x_t)
    dh_prev = np.zeros_like(cache.h_prev)
    gate_grads: dict[str, GateParams] = {}
    for name, gate in cache.params.gates():
        dz_gate = dz[name]
        dx_t += dz_gate @ gate.w_x.T
        dh_prev += dz_gate @ gate.w_h.T
        gate_grads[name] = GateParams(
            w_x=cache.x_t.T @ dz_gate, w_h=cache.h_prev.T @ dz_gate, b=dz_gate.sum(axis=0)
        )
    return LSTMCellGradients(
        dx_t=dx_t, dh_prev=dh_prev, dc_prev=dc * cache.f, params=LSTMParams(**gate_grads)
    )


def lstm_forward(
    x: ArrayLike, h0: ArrayLike | None, c0: ArrayLike | None, params: LSTMParams
) -> tuple[FloatArray, FloatArray, tuple[LSTMCellCache, ...]]:
    """Runs an LSTM over a whole sequence, like ``LSTM(return_sequences=True)``.

    Args:
        x: Inputs, shape ``(batch, time, n_x)`` (batch first, as in Keras).
        h0: Initial hidden state ``(batch, n_h)``; ``None`` means zeros.
        c0: Initial cell state ``(batch, n_h)``; ``None`` means zeros.
        params: The LSTM parameters.

    Returns:
        ``(h, c, caches)``: hidden states and cell states for steps ``1 .. T``, each
        ``(batch, time, n_h)`` (the Keras final states are ``h[:, -1]`` and
        ``c[:, -1]``), and one :class:`LSTMCellCache` per time step.

    Raises:
        ValueError: If shapes disagree with each other or with ``params``.
    """
    seq = _sequence(x, params.n_x)
    batch, time, _ = seq.shape
    h = _initial_state(h0, "h0", batch, params.n_h)
    c = _initial_state(c0, "c0", batch, params.n_h)
    hs = np.empty((batch, time, params.n_h))
    cs = np.empty((batch, time, params.n_h))
    caches: list[LSTMCellCache] = []
    for t in range(time):
        h, c, cache = lstm_cell_forward(seq[:, t, :], h, c, params)
        hs[:, t, :] = h
        cs[:, t, :] = c
        caches.append(cache)
    return hs, cs, tuple(caches)


def lstm_backward(
    dh: ArrayLike, caches: Sequence[LSTMCellCache], dc_last: ArrayLike | None = None
) -> LSTMGradients:
    """Backpropagation through time for :func:`lstm_forward`.

    Args:
        dh: Gradient of the loss w.r.t. every hidden state ``h_1 .. h_T``, shape
            ``(batch, time, n_h)``.
        caches: The caches returned by :func:`lstm_forward`.
        dc_last: Optional gradient w.r.t. the final cell state ``c_T``, ``(batch, n_h)``,
            for losses that use it directly; ``None`` means zero.

    Returns:
        Gradients w.r.t. ``x``, ``h0``, ``c0`` and every gate's parameters.

    Raises:
        ValueError: If ``caches`` is empty or a gradient has the wrong shape.
    """
    if len(caches) == 0:
        raise ValueError("caches is empty; pass the caches returned by lstm_forward")
    params = caches[0].params
    batch, n_x, n_h = caches[0].x_t.shape[0], params.n_x, params.n_h
    upstream = _as_float(dh, "dh", 3)
    expected = (batch, len(caches), n_h)
    if upstream.shape != expected:
        raise ValueError(f"dh must have shape (batch, time, n_h)={expected}, got {upstream.shape}")
    dc_carry = _initial_state(dc_last, "dc_last", batch, n_h)
    dh_carry = np.zeros((batch, n_h))
    dx = np.empty((batch, len(caches), n_x))
    totals = {
        name: [np.zeros((n_x, n_h)), np.zeros((n_h, n_h)), np.zeros(n_h)]
        for name in KERAS_LSTM_GATE_ORDER
    }
    for t in reversed(range(len(caches))):
        step = lstm_cell_backward(upstream[:, t, :] + dh_carry, dc_carry, caches[t])
        dx[:, t, :] = step.dx_t
        dh_carry, dc_carry = step.dh_prev, step.dc_prev
        for name, gate in step.params.gates():
            totals[name][0] += gate.w_x
            totals[name][1] += gate.w_h
            totals[name][2] += gate.b
    grads = LSTMParams(**{name: GateParams(*arrays) for name, arrays in totals.items()})
    return LSTMGradients(dx=dx, dh0=dh_carry, dc0=dc_carry, params=grads)


# --------------------------------------------------------------------------- Keras bridge


def _keras_weights(source: Any, kind: str) -> list[FloatArray]:
    """Returns a Keras layer's (or cell's, or weight list's) arrays as float64.

    Checks the activations of a layer/cell, because the reference cells implement only
    the defaults (``tanh``, and ``sigmoid`` for the LSTM recurrent activation).
    """
    if hasattr(source, "get_weights"):
        expected = {"activation": "tanh"}
        if kind == "LSTM":
            expected["recurrent_activation"] = "sigmoid"
        for attr, name in expected.items():
            fn = getattr(source, attr, None)
            actual = getattr(fn, "__name__", repr(fn))
            if actual != name:
                raise ValueError(f"{kind} {attr} must be {name!r} to match, got {actual!r}")
        arrays = source.get_weights()
        if not arrays:
            raise ValueError(f"{kind} layer has no weights yet; build it (call it once) first")
    elif isinstance(source, Sequence) and not isinstance(source, str):
        arrays = list(source)
    else:
        raise TypeError(
            f"expected a Keras {kind} layer/cell or a list of weight arrays, "
            f"got {type(source).__name__}"
        )
    if len(arrays) not in (2, 3):
        raise ValueError(
            f"expected [kernel, recurrent_kernel] or [kernel, recurrent_kernel, bias], "
            f"got {len(arrays)} arrays"
        )
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def rnn_params_from_keras(source: Any) -> RNNParams:
    """Builds :class:`RNNParams` from a Keras ``SimpleRNN`` layer or cell.

    Args:
        source: A built ``keras.layers.SimpleRNN`` / ``SimpleRNNCell`` (activation must be
            ``tanh``), or its ``get_weights()`` list ``[kernel, recurrent_kernel, bias]``
            (``bias`` may be absent when ``use_bias=False``).

    Returns:
        The parameters as float64: ``w_x = kernel``, ``w_h = recurrent_kernel``,
        ``b = bias``.

    Raises:
        TypeError: If ``source`` is neither a layer nor a list of arrays.
        ValueError: If the activation is not ``tanh`` or the shapes are inconsistent.
    """
    arrays = _keras_weights(source, "SimpleRNN")
    kernel, recurrent = arrays[0], arrays[1]
    bias = arrays[2] if len(arrays) == 3 else np.zeros(np.shape(kernel)[-1])
    return RNNParams(w_x=kernel, w_h=recurrent, b=bias)


def rnn_params_to_keras_weights(params: RNNParams) -> list[FloatArray]:
    """Returns ``[kernel, recurrent_kernel, bias]`` for ``SimpleRNN.set_weights``."""
    return [params.w_x.copy(), params.w_h.copy(), params.b.copy()]


def lstm_params_from_keras(source: Any) -> LSTMParams:
    """Builds :class:`LSTMParams` from a Keras ``LSTM`` layer or cell.

    The Keras ``kernel`` ``(n_x, 4 n_h)``, ``recurrent_kernel`` ``(n_h, 4 n_h)`` and
    ``bias`` ``(4 n_h,)`` are split into four column blocks in the Keras gate order
    i, f, c, o (:data:`KERAS_LSTM_GATE_ORDER`).

    Args:
        source: A built ``keras.layers.LSTM`` / ``LSTMCell`` (``tanh`` activation and
            ``sigmoid`` recurrent activation), or its ``get_weights()`` list
            ``[kernel, recurrent_kernel, bias]`` (``bias`` may be absent).

    Returns:
        The per-gate parameters as float64.

    Raises:
        TypeError: If ``source`` is neither a layer nor a list of arrays.
        ValueError: If an activation differs or the shapes are not a valid LSTM.
    """
    arrays = _keras_weights(source, "LSTM")
    kernel, recurrent = arrays[0], arrays[1]
    if kernel.ndim != 2 or kernel.shape[1] % 4 != 0:
        raise ValueError(f"LSTM kernel must be (n_x, 4 * n_h), got shape {kernel.shape}")
    n_h = kernel.shape[1] // 4
    bias = arrays[2] if len(arrays) == 3 else np.zeros(4 * n_h)
    if recurrent.shape != (n_h, 4 * n_h):
        raise ValueError(
            f"LSTM recurrent_kernel must be (n_h, 4 * n_h)=({n_h}, {4 * n_h}), "
            f"got {recurrent.shape}"
        )
    if bias.shape != (4 * n_h,):
        raise ValueError(f"LSTM bias must be (4 * n_h,)=({4 * n_h},), got {bias.shape}")
    gates = {}
    for k, name in enumerate(KERAS_LSTM_GATE_ORDER):
        cols = slice(k * n_h, (k + 1) * n_h)
        gates[name] = GateParams(w_x=kernel[:, cols], w_h=recurrent[:, cols], b=bias[cols])
    return LSTMParams(**gates)


def lstm_params_to_keras_weights(params: LSTMParams) -> list[FloatArray]:
    """Returns ``[kernel, recurrent_kernel, bias]`` (gate order i, f, c, o) for Keras."""
    gates = [gate for _, gate in params.gates()]
    return [
        np.concatenate([g.w_x for g in gates], axis=1),
        np.concatenate([g.w_h for g in gates], axis=1),
        np.concatenate([g.b for g in gates]),
    ]
