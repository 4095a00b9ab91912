"""Many copies of the closecast network, stacked on a leading axis and stepped as one.

A group of ``G`` networks of one architecture (LSTM(units) -> Dropout -> Dense(1)) is held as
four stacked weight tensors (:func:`stack`)::

    lstm (G, 1 + H, 4H)   bias (G, 4H)   dense (G, H, 1)   dense_bias (G, 1)

One traced graph steps the whole group (each network through TensorFlow's fused LSTM kernel,
see :func:`_forward`), so the per-model overhead that bounds a network this small (building
and tracing a Keras model, ``fit``'s machinery) is paid once per process and architecture,
not once per ticker.

The arithmetic is that of Keras' ``LSTMCell`` (gate order i, f, c, o) and ``Adam``, the
dropout masks are Keras' (``stateless_dropout`` seeded ``[seed + 2, step]``, the Dropout
layer's own seed generator in :func:`lstm_model.model.build_model`), and the order of the
training windows is Keras' (:func:`keras_shuffle_order`). A group member therefore follows
the same trajectory as the same network trained alone by ``keras.Model.fit``, up to float
rounding (a batched matmul sums in another order than a single one).

Only TensorFlow is used here; the training loop and early stopping live in
:mod:`lstm_model.batch`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from lstm_model.quiet import quiet_tensorflow

quiet_tensorflow()  # before TensorFlow's first import: its C++ log lines are not for users

import tensorflow as tf  # noqa: E402

# Keras' Adam defaults, which build_model/compile_model use.
BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-7


@functools.lru_cache(maxsize=256)
def keras_shuffle_order(n: int, seed: int) -> np.ndarray:
    """The order in which ``keras.Model.fit(shuffle=True)`` visits ``n`` samples.

    Keras (3.x, TensorFlow backend) draws the permutation with ``tf.random.shuffle`` inside a
    ``tf.data`` map function; with the global seed set by
    :func:`lstm_model.model.seed_everything` that draw depends only on the seed and ``n``,
    and every epoch re-instantiates it, so every epoch uses the same order. This replays the
    same draw. ``tests/model/test_batch.py`` checks it against ``fit``. Cached: the draw
    builds a ``tf.data`` pipeline, and groups of one run share a few window counts.
    """
    from lstm_model.model import seed_everything

    seed_everything(seed)

    def permutation(_: Any) -> tf.Tensor:
        indices = tf.range(n, dtype=tf.int64)
        return tf.random.shuffle(indices)

    dataset = tf.data.Dataset.range(1).map(permutation)
    order = next(iter(dataset)).numpy()
    order.setflags(write=False)
    return order


def dropout_seed(seed: int, step: int) -> np.ndarray:
    """The stateless seed of Keras' Dropout layer (seed ``seed + 2``) at training ``step``."""
    return np.array([(seed + 2) % (2**31 - 2), step % (2**31 - 2)], dtype=np.int32)


def stack(weights: list[list[np.ndarray]]) -> list[tf.Tensor]:
    """Stack per-network ``get_weights()`` lists into the group's tensors.

    The LSTM's ``kernel`` and ``recurrent_kernel`` become one ``(1 + H, 4H)`` matrix per
    network, in the layout of TensorFlow's fused ``BlockLSTM`` kernel, whose gate order is
    i, c, f, o (Keras': i, f, c, o).
    """
    fused = [_swap_fc(np.concatenate([w[0], w[1]], axis=0)) for w in weights]
    bias = [_swap_fc(w[2]) for w in weights]
    arrays = [fused, bias, [w[3] for w in weights], [w[4] for w in weights]]
    return [tf.constant(np.stack(a).astype(np.float32)) for a in arrays]


def unstack(params: list[Any], row: int) -> list[np.ndarray]:
    """One network's ``get_weights()`` list from the group's (NumPy) tensors."""
    fused, bias, dense, dense_bias = (np.array(p[row], dtype=np.float32) for p in params)
    fused, bias = _swap_fc(fused), _swap_fc(bias)
    return [fused[:1], fused[1:], bias, dense, dense_bias]


def _swap_fc(gates: np.ndarray) -> np.ndarray:
    """Swap the forget and candidate gate blocks of the last axis (i f c o <-> i c f o)."""
    i, f, c, o = np.split(gates, 4, axis=-1)
    return np.concatenate([i, c, f, o], axis=-1)


def _forward(params: list[tf.Tensor], x: tf.Tensor, keep: tf.Tensor | None) -> tf.Tensor:
    """Outputs ``(G, n)`` for windows ``x`` of shape ``(G, n, T)``; ``keep`` is the dropout
    multiplier ``(n, H)`` shared by the group (``None``: inference).

    Each network runs TensorFlow's fused LSTM kernel (``BlockLSTM``: all time steps in one op,
    its gradient in one more; not ``BlockLSTMV2``, whose registered gradient is the V1 one
    and so wrong for V2's gate order), mapped over the group by one ``while`` loop, so a group of
    any size costs one trace and a few ops per network per step; an unrolled, batched-matmul
    LSTM over the group measured 3x slower here, bound by its elementwise ops' memory traffic.
    """
    units = params[2].shape[1]
    look_back = x.shape[2]
    no_peephole = tf.zeros([units], x.dtype)

    def one(member: tuple[tf.Tensor, ...]) -> tf.Tensor:
        fused, bias, dense, dense_bias, windows = member
        steps = tf.transpose(windows)[:, :, tf.newaxis]  # (T, n, 1), time-major
        zero = tf.zeros(tf.stack([tf.shape(windows)[0], units]), x.dtype)
        h = tf.raw_ops.BlockLSTM(
            seq_len_max=tf.constant(look_back, tf.int64),
            x=steps,
            cs_prev=zero,
            h_prev=zero,
            w=fused,
            wci=no_peephole,
            wcf=no_peephole,
            wco=no_peephole,
            b=bias,
            forget_bias=0.0,  # Keras' unit_forget_bias lives in the bias itself
            cell_clip=-1.0,  # no clipping, as Keras
            use_peephole=False,
        )[6][-1]
        if keep is not None:
            h = h * keep
        return (tf.matmul(h, dense) + dense_bias)[:, 0]

    return tf.map_fn(one, (*params, x), fn_output_signature=x.dtype)


def _weight_specs(units: int) -> list[tf.TensorSpec]:
    four = 4 * units
    shapes = [(None, 1 + units, four), (None, four), (None, units, 1), (None, 1)]
    return [tf.TensorSpec(shape, tf.float32) for shape in shapes]


def _windows_spec(look_back: int) -> tf.TensorSpec:
    return tf.TensorSpec((None, None, look_back), tf.float32)


@functools.lru_cache(maxsize=8)
def _train_step_fn(look_back: int, units: int, dropout: float) -> Any:
    """One Adam step for every network of a group on its own batch.

    Traced once per architecture: the group size and batch length are left open.
    """
    weights = _weight_specs(units)
    signature = [
        weights,
        weights,
        weights,
        tf.TensorSpec((), tf.int64),
        _windows_spec(look_back),
        tf.TensorSpec((None, None), tf.float32),
        tf.TensorSpec((2,), tf.int32),
        tf.TensorSpec((), tf.float32),
    ]

    @tf.function(input_signature=signature)
    def train_step(params, m, v, step, x, y, seed, learning_rate):
        units = params[2].shape[1]
        keep = None
        if dropout > 0:
            ones = tf.ones(tf.stack([tf.shape(x)[1], units]), dtype=x.dtype)
            keep = tf.nn.experimental.stateless_dropout(ones, rate=dropout, seed=seed)
        with tf.GradientTape() as tape:
            tape.watch(params)
            pred = _forward(params, x, keep)
            per_network = tf.reduce_mean(tf.square(y - pred), axis=1)  # Keras' MSE per network
            total = tf.reduce_sum(per_network)  # networks share no weight: gradients separate
        grads = tape.gradient(total, params)
        local_step = tf.cast(step + 1, tf.float32)
        alpha = (
            learning_rate
            * tf.sqrt(1 - tf.pow(tf.constant(BETA_2, tf.float32), local_step))
            / (1 - tf.pow(tf.constant(BETA_1, tf.float32), local_step))
        )
        new_params, new_m, new_v = [], [], []
        for p, g, m_i, v_i in zip(params, grads, m, v, strict=True):
            m_i = m_i + (g - m_i) * (1 - BETA_1)
            v_i = v_i + (tf.square(g) - v_i) * (1 - BETA_2)
            new_params.append(p - (m_i * alpha) / (tf.sqrt(v_i) + EPSILON))
            new_m.append(m_i)
            new_v.append(v_i)
        return new_params, new_m, new_v, per_network

    return train_step


@functools.lru_cache(maxsize=8)
def _mse_fn(look_back: int, units: int) -> Any:
    signature = [
        _weight_specs(units),
        _windows_spec(look_back),
        tf.TensorSpec((None, None), tf.float32),
    ]

    @tf.function(input_signature=signature)
    def mse(params, x, y):
        return tf.reduce_mean(tf.square(y - _forward(params, x, None)), axis=1)

    return mse


def train_step(
    params: list[tf.Tensor],
    m: list[tf.Tensor],
    v: list[tf.Tensor],
    *,
    step: int,
    x: tf.Tensor,
    y: tf.Tensor,
    dropout: float,
    seed: int,
    learning_rate: float,
) -> tuple[list[tf.Tensor], list[tf.Tensor], list[tf.Tensor], np.ndarray]:
    """One training step of the group; returns new weights, Adam moments and each loss."""
    fn = _train_step_fn(int(x.shape[2]), int(params[2].shape[1]), float(dropout))
    new_params, new_m, new_v, loss = fn(
        params,
        m,
        v,
        tf.constant(step, tf.int64),
        x,
        y,
        tf.constant(dropout_seed(seed, step)),
        tf.constant(learning_rate, tf.float32),
    )
    return list(new_params), list(new_m), list(new_v), loss.numpy()


def mse(params: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor) -> np.ndarray:
    """Each network's mean squared error on its own windows (inference mode)."""
    return _mse_fn(int(x.shape[2]), int(params[2].shape[1]))(params, x, y).numpy()
