"""Many copies of the closecast network, stacked on a leading axis and stepped as one.

A group of ``G`` networks of one architecture (LSTM(units) -> Dropout -> Dense(1)) is held as
five stacked weight tensors, in the order and layout of ``keras.Model.get_weights()``::

    kernel (G, 1, 4H)   recurrent_kernel (G, H, 4H)   bias (G, 4H)
    dense (G, H, 1)     dense_bias (G, 1)

Every time step of every network is one batched matmul over the group, so the per-op
overhead that bounds a small network (tracing, op dispatch, Keras' ``fit`` machinery) is paid
once per group, not once per ticker.

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
import tensorflow as tf

# Keras' Adam defaults, which build_model/compile_model use.
BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-7

N_WEIGHTS = 5


def keras_shuffle_order(n: int, seed: int) -> np.ndarray:
    """The order in which ``keras.Model.fit(shuffle=True)`` visits ``n`` samples.

    Keras (3.x, TensorFlow backend) draws the permutation with ``tf.random.shuffle`` inside a
    ``tf.data`` map function; with the global seed set by
    :func:`lstm_model.model.seed_everything` that draw depends only on the seed and ``n``,
    and every epoch re-instantiates it, so every epoch uses the same order. This replays the
    same draw. ``tests/model/test_batch.py`` checks it against ``fit``.
    """
    from lstm_model.model import seed_everything

    seed_everything(seed)

    def permutation(_: Any) -> tf.Tensor:
        indices = tf.range(n, dtype=tf.int64)
        return tf.random.shuffle(indices)

    dataset = tf.data.Dataset.range(1).map(permutation)
    return next(iter(dataset)).numpy()


def dropout_seed(seed: int, step: int) -> np.ndarray:
    """The stateless seed of Keras' Dropout layer (seed ``seed + 2``) at training ``step``."""
    return np.array([(seed + 2) % (2**31 - 2), step % (2**31 - 2)], dtype=np.int32)


def stack(weights: list[list[np.ndarray]]) -> list[tf.Tensor]:
    """Stack per-network ``get_weights()`` lists into the group's five tensors."""
    return [
        tf.constant(np.stack([w[i] for w in weights]).astype(np.float32)) for i in range(N_WEIGHTS)
    ]


def unstack(params: list[Any], row: int) -> list[np.ndarray]:
    """One network's ``get_weights()`` list from the group's (NumPy) tensors."""
    return [np.array(p[row], dtype=np.float32) for p in params]


def _forward(params: list[tf.Tensor], x: tf.Tensor, keep: tf.Tensor | None) -> tf.Tensor:
    """Outputs ``(G, n)`` for windows ``x`` of shape ``(G, n, T)``; ``keep`` is the dropout
    multiplier ``(n, H)`` shared by the group (``None``: inference)."""
    kernel, recurrent, bias, dense, dense_bias = params
    units = tf.shape(recurrent)[1]
    # One input feature: ``x_t @ kernel`` is a broadcast product, the same value Keras' matmul
    # gives. Precomputed for all steps at once.
    xz = x[:, :, :, tf.newaxis] * kernel[:, tf.newaxis, :, :]  # (G, n, T, 4H)
    batch = tf.shape(x)[:2]
    h = tf.zeros(tf.concat([batch, [units]], 0), dtype=x.dtype)
    c = tf.zeros_like(h)
    for t in range(x.shape[2]):  # look_back is static: the loop is unrolled once per trace
        z = xz[:, :, t, :] + tf.matmul(h, recurrent)
        z = z + bias[:, tf.newaxis, :]
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        i = tf.sigmoid(z_i)
        f = tf.sigmoid(z_f)
        c = f * c + i * tf.tanh(z_c)
        o = tf.sigmoid(z_o)
        h = o * tf.tanh(c)
    if keep is not None:
        h = h * keep[tf.newaxis, :, :]
    out = tf.matmul(h, dense) + dense_bias[:, tf.newaxis, :]
    return out[:, :, 0]


def _weight_specs(units: int) -> list[tf.TensorSpec]:
    four = 4 * units
    shapes = [(None, 1, four), (None, units, four), (None, four), (None, units, 1), (None, 1)]
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
        units = tf.shape(params[1])[1]
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
def _outputs_fn(look_back: int, units: int) -> Any:
    @tf.function(input_signature=[_weight_specs(units), _windows_spec(look_back)])
    def outputs(params, x):
        return _forward(params, x, None)

    return outputs


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
    fn = _train_step_fn(int(x.shape[2]), int(params[1].shape[1]), float(dropout))
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
    return _mse_fn(int(x.shape[2]), int(params[1].shape[1]))(params, x, y).numpy()


def outputs(params: list[tf.Tensor], x: np.ndarray) -> np.ndarray:
    """Each network's outputs ``(G, n)`` on its own windows ``(G, n, T)`` (inference mode)."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[:2], dtype=np.float64)
    fn = _outputs_fn(int(x.shape[2]), int(params[1].shape[1]))
    return fn(params, tf.constant(x, tf.float32)).numpy().astype(np.float64)
