"""The network's forward pass in NumPy: LSTM(units) -> Dense(1), inference mode.

Every forecast, backtest and interval calibration runs the trained network forward on a few
hundred windows at most. Calling the Keras model for that costs about 75 ms of CPU per call
whatever the batch (eager dispatch of each time step's ops), and a ticker's day makes
several such calls: at hundreds of tickers those calls were the largest part of a run. The
same arithmetic in NumPy costs well under a millisecond, needs no Keras model at all (a
loaded or batch-trained model serves from its weights), and takes no TensorFlow lock.

The weights are Keras's ``get_weights()`` of :func:`lstm_model.model.build_network`: the
LSTM's kernel ``(features, 4 * units)``, recurrent kernel ``(units, 4 * units)`` and bias
``(4 * units,)`` with Keras's gate order input, forget, candidate, output; then the Dense
kernel ``(units, 1)`` and bias ``(1,)``. Dropout is the identity at inference. Computed in
float32 like TensorFlow; the outputs agree with the Keras model's to float32 rounding
(``tests/model/test_inference.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

N_WEIGHTS = 5
PROJECTION_FLOATS = 4_000_000
"""Most input-projection floats computed at once (16 MB)."""


def network_outputs(weights: Sequence[np.ndarray], inputs: np.ndarray) -> np.ndarray:
    """The network's outputs on ``inputs`` as a 1-D float64 array.

    Args:
        weights: The network's ``get_weights()`` (see the module docstring).
        inputs: Windows, shape ``(n, look_back, features)``.

    Raises:
        ValueError: If the weights are not an LSTM -> Dense network's or the windows do not
            fit them.
    """
    kernel, recurrent, bias, dense, dense_bias = _checked(weights, inputs)
    n, steps, _ = inputs.shape
    if n == 0:
        return np.empty(0, dtype="float64")
    units = recurrent.shape[0]
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    # Every step's input projection in one product, then the loop does the recurrence only;
    # past PROJECTION_FLOATS one step's at a time (same bits): all at once held n x steps x
    # 4 units floats, 832 MB for a 500-ticker pooled backtest, the peak of a cold run.
    projected = None
    if n * steps * 4 * units <= PROJECTION_FLOATS:
        projected = (x.reshape(n * steps, -1) @ kernel).reshape(n, steps, 4 * units) + bias
    h = np.zeros((n, units), dtype=np.float32)
    c = np.zeros((n, units), dtype=np.float32)
    for t in range(steps):
        step = projected[:, t] if projected is not None else x[:, t] @ kernel + bias
        z = step + h @ recurrent
        i = expit(z[:, :units])
        f = expit(z[:, units : 2 * units])
        g = np.tanh(z[:, 2 * units : 3 * units])
        o = expit(z[:, 3 * units :])
        c = f * c + i * g
        h = o * np.tanh(c)
    return (h @ dense + dense_bias).astype("float64").reshape(-1)


def _checked(
    weights: Sequence[np.ndarray], inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if len(weights) != N_WEIGHTS:
        raise ValueError(
            f"expected the {N_WEIGHTS} weight arrays of an LSTM -> Dense network, "
            f"got {len(weights)}"
        )
    kernel, recurrent, bias, dense, dense_bias = (np.asarray(w, dtype=np.float32) for w in weights)
    units = recurrent.shape[0]
    if (
        recurrent.shape != (units, 4 * units)
        or kernel.ndim != 2
        or kernel.shape[1] != 4 * units
        or bias.shape != (4 * units,)
        or dense.shape != (units, 1)
        or dense_bias.shape != (1,)
    ):
        shapes = [w.shape for w in (kernel, recurrent, bias, dense, dense_bias)]
        raise ValueError(f"not an LSTM -> Dense network's weights: shapes {shapes}")
    if inputs.ndim != 3 or inputs.shape[2] != kernel.shape[0]:
        raise ValueError(
            f"windows of shape {inputs.shape} do not fit a network of "
            f"{kernel.shape[0]} input feature(s)"
        )
    return kernel, recurrent, bias, dense, dense_bias
