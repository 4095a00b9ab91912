"""A per-ticker network's ``model.keras`` file, written and read without a Keras model per
ticker.

Building a Keras model to save a batch-trained network, and ``keras.models.load_model`` to
read one back, cost about 40 and 80 ms per ticker: at hundreds of tickers a day, more than
the training of a warm day. Writing starts from the archive one Keras model of the
configuration wrote (once per process) and puts the network's weights in its
``model.weights.h5``, so the file is Keras's own format (``keras.models.load_model`` reads it);
reading takes the weights straight out of the archive (a few ms) and serves them through
:mod:`lstm_model.inference`.

Reading deserialises nothing from the file: its ``config.json`` must describe exactly the
network :func:`lstm_model.model.build_network` makes (input, LSTM, dropout, Dense(1), with
their default activations) and its weights must have that network's shapes; anything else
is refused.
"""

from __future__ import annotations

import functools
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_model.config import ModelConfig

if TYPE_CHECKING:
    from lstm_model.global_lstm import GlobalLSTMConfig

# Where Keras 3 stores the layers' variables in the archive's model.weights.h5, in
# ``get_weights()`` order: the LSTM cell's kernel, recurrent kernel and bias, then the
# Dense kernel and bias.
WEIGHT_PATHS = (
    "layers/lstm/cell/vars/0",
    "layers/lstm/cell/vars/1",
    "layers/lstm/cell/vars/2",
    "layers/dense/vars/0",
    "layers/dense/vars/1",
)
WEIGHTS_ENTRY = "model.weights.h5"
_LAYERS = ("InputLayer", "LSTM", "Dropout", "Dense")
_LSTM_FIXED = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "use_bias": True,
    "return_sequences": False,
    "return_state": False,
    "go_backwards": False,
    "stateful": False,
}
_DENSE_FIXED = {"units": 1, "activation": "linear", "use_bias": True}


class _Template:
    """The archive one Keras model of an architecture wrote, kept for the process: every
    network of that configuration is the same archive with other weight values."""

    def __init__(self, config: ModelConfig) -> None:
        import tempfile

        from lstm_model.model import build_model

        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.keras"
            build_model(config).save(path)
            with zipfile.ZipFile(path) as archive:
                self.entries = [(info, archive.read(info)) for info in archive.infolist()]
        if WEIGHTS_ENTRY not in {info.filename for info, _ in self.entries}:
            raise RuntimeError(f"Keras wrote no {WEIGHTS_ENTRY}: an unknown .keras layout")

    def with_weights(self, weights: list[np.ndarray]) -> bytes:
        """The archive with ``weights`` (``get_weights()`` order) in place of the template's."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for info, data in self.entries:
                if info.filename == WEIGHTS_ENTRY:
                    data = _replace_weights(data, weights)
                archive.writestr(info, data)
        return out.getvalue()


def _replace_weights(h5_bytes: bytes, weights: list[np.ndarray]) -> bytes:
    import h5py

    buffer = io.BytesIO(h5_bytes)
    with h5py.File(buffer, "r+") as h5:
        for name, values in zip(WEIGHT_PATHS, weights, strict=True):
            dataset = h5[name]
            if dataset.shape != np.shape(values):
                raise ValueError(
                    f"{name}: weights of shape {np.shape(values)}, expected {dataset.shape}"
                )
            dataset[...] = values
    return buffer.getvalue()


@functools.lru_cache(maxsize=16)
def _template(config: ModelConfig) -> _Template:
    return _Template(config)


_TEMPLATE_LOCK = threading.Lock()


def save_network(weights: list[np.ndarray], config: ModelConfig, path: Path) -> None:
    """Write a network of ``config`` with ``weights`` as a Keras ``.keras`` file."""
    # One Keras model per architecture, built once: keyed by the configuration itself, a
    # run built one for every distinct epoch count its fine-tunes and refits ended with.
    with _TEMPLATE_LOCK:
        template = _template(config.architecture())
    path.write_bytes(template.with_weights(weights))


def read_network(
    path: Path, config: ModelConfig | GlobalLSTMConfig, n_features: int = 1
) -> list[np.ndarray]:
    """The weights (``get_weights()`` order) of the network of ``config`` saved at ``path``
    (a per-ticker network, or the global LSTM's: the same layers).

    Raises:
        ValueError: The file does not hold exactly that network.
        OSError, zipfile.BadZipFile, KeyError: The file is unreadable.
    """
    with zipfile.ZipFile(path) as archive:
        _check_architecture(json.loads(archive.read("config.json")), config, n_features)
        import h5py

        with h5py.File(io.BytesIO(archive.read(WEIGHTS_ENTRY)), "r") as h5:
            weights = [np.asarray(h5[name], dtype=np.float32) for name in WEIGHT_PATHS]
    units = config.units
    expected = [(n_features, 4 * units), (units, 4 * units), (4 * units,), (units, 1), (1,)]
    shapes = [w.shape for w in weights]
    if shapes != expected:
        raise ValueError(f"weights of shapes {shapes}, expected {expected}")
    return weights


def _check_architecture(
    saved: dict[str, Any], config: ModelConfig | GlobalLSTMConfig, n_features: int
) -> None:
    layers = saved.get("config", {}).get("layers", [])
    names = tuple(layer.get("class_name") for layer in layers)
    if saved.get("class_name") != "Sequential" or names != _LAYERS:
        raise ValueError(
            f"not the closecast LSTM network: {saved.get('class_name')} of {list(names)}"
        )
    given, lstm, _, dense = (layer["config"] for layer in layers)
    shape = given.get("batch_shape")
    if shape != [None, config.look_back, n_features]:
        raise ValueError(
            f"input of shape {shape}, expected [None, {config.look_back}, {n_features}]"
        )
    fixed = {**_LSTM_FIXED, "units": config.units}
    wrong = {k: lstm.get(k) for k, v in fixed.items() if lstm.get(k) != v}
    wrong |= {f"dense {k}": dense.get(k) for k, v in _DENSE_FIXED.items() if dense.get(k) != v}
    if wrong:
        raise ValueError(f"not the closecast LSTM network: {wrong}")
