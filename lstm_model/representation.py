"""How prices become network inputs and targets, and predictions become prices again.

Every representation has the same small interface, so the model stays thin:

* ``history``: how many prices precede the first target (window + any differencing);
* ``fit(train_prices)``: learn scaling statistics from training prices only;
* ``inputs(prices)``: one window per position, ``X[k]`` built only from
  ``prices[k : k + history]`` and meant to predict ``prices[k + history]`` (the last row is
  the window for the day after ``prices`` ends);
* ``targets(prices)``: the model-unit target of every window but the last;
* ``windows(prices)``: ``(inputs[:-1], targets)`` -- the supervised pairs;
* ``to_price(pred, prev_price)``: model output back to a price, given the last known price;
* ``to_json()`` / :func:`representation_from_json`.

Windows are NumPy ``sliding_window_view`` views of one scaled array (no per-window copies).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from lstm_model.data import InsufficientDataError, MinMaxScaler, window_view


class Representation(ABC):
    """Base: windowing and length checks; subclasses only define the transform."""

    kind: ClassVar[str]

    def __init__(self, look_back: int) -> None:
        self.look_back = int(look_back)

    @property
    @abstractmethod
    def history(self) -> int:
        """Prices needed before the first target."""

    @property
    @abstractmethod
    def fitted(self) -> bool: ...

    @abstractmethod
    def fit(self, train_prices: Any) -> Representation: ...

    @abstractmethod
    def _series(self, prices: np.ndarray) -> np.ndarray:
        """The scaled 1-D series windows are cut from; ``series[i]`` uses prices up to
        index ``i + (history - look_back)``."""

    @abstractmethod
    def to_price(self, pred: Any, prev_price: Any) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    def _prices(self, prices: Any) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        values = np.asarray(prices, dtype="float64")
        if values.ndim != 1:
            raise ValueError(f"prices must be 1-D, got shape {values.shape}")
        if len(values) < self.history:
            raise InsufficientDataError(
                f"need at least {self.history} prices for one {self.look_back}-day window "
                f"({self.kind}), got {len(values)}"
            )
        return values

    def inputs(self, prices: Any) -> np.ndarray:
        """Windows of shape ``(len(prices) - history + 1, look_back, 1)``, float32."""
        series = self._series(self._prices(prices)).astype("float32")
        return window_view(series, self.look_back)[..., np.newaxis]

    def targets(self, prices: Any) -> np.ndarray:
        """Targets of shape ``(len(prices) - history,)``: ``targets[k]`` is ``prices[k + history]``
        in model units."""
        series = self._series(self._prices(prices)).astype("float32")
        return series[self.look_back :]

    def windows(self, prices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Supervised pairs ``(X, y)``; each window holds only days before its target."""
        values = self._prices(prices)
        if len(values) <= self.history:
            raise InsufficientDataError(
                f"need more than {self.history} prices for a {self.look_back}-day window with a "
                f"target ({self.kind}), got {len(values)}"
            )
        return self.inputs(values)[:-1], self.targets(values)

    def fitted_range(self) -> tuple[float, float] | None:
        """Price range the scaler was fit on, for global scalers; ``None`` otherwise."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "look_back": self.look_back, **self._state()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class GlobalMinMax(Representation):
    """The tutorial's representation: prices scaled 0..1 by one scaler fit on training rows.

    Inputs are the scaled prices of the window, the target is the next scaled price. Test
    prices above the training maximum map above 1, where the network has never been trained.
    """

    kind = "global_minmax"

    def __init__(self, look_back: int, scaler: MinMaxScaler | None = None) -> None:
        super().__init__(look_back)
        self.scaler = scaler or MinMaxScaler()

    @property
    def history(self) -> int:
        return self.look_back

    @property
    def fitted(self) -> bool:
        return self.scaler.fitted

    def fit(self, train_prices: Any) -> GlobalMinMax:
        self.scaler.fit(train_prices)
        return self

    def _series(self, prices: np.ndarray) -> np.ndarray:
        return self.scaler.transform(prices)

    def to_price(self, pred: Any, prev_price: Any) -> np.ndarray:
        return self.scaler.inverse_transform(np.asarray(pred, dtype="float64"))

    def fitted_range(self) -> tuple[float, float] | None:
        return (float(self.scaler.data_min), float(self.scaler.data_max))  # type: ignore[arg-type]

    def _state(self) -> dict[str, Any]:
        return {"data_min": self.scaler.data_min, "data_max": self.scaler.data_max}


class RelativeLogReturn(Representation):
    """Daily log returns, standardised with training statistics; target = next log return.

    A prediction ``z`` maps back to ``prev_price * exp(z * std + mean)``, so the level of the
    price never enters the network: test prices outside the training range are no problem.
    """

    kind = "relative_log_return"

    def __init__(self, look_back: int, mean: float | None = None, std: float | None = None) -> None:
        super().__init__(look_back)
        self.mean = mean
        self.std = std

    @property
    def history(self) -> int:
        return self.look_back + 1

    @property
    def fitted(self) -> bool:
        return self.mean is not None and self.std is not None

    def fit(self, train_prices: Any) -> RelativeLogReturn:
        values = np.asarray(train_prices, dtype="float64")
        if len(values) < 3 or not np.all(np.isfinite(values)) or values.min() <= 0:
            raise ValueError("RelativeLogReturn.fit needs >= 3 positive, finite prices")
        returns = np.diff(np.log(values))
        self.mean = float(returns.mean())
        std = float(returns.std())
        self.std = std if std > 1e-12 else 1.0
        return self

    def _series(self, prices: np.ndarray) -> np.ndarray:
        if prices.min() <= 0:
            raise ValueError("log returns need positive prices")
        return (np.diff(np.log(prices)) - self.mean) / self.std

    def to_price(self, pred: Any, prev_price: Any) -> np.ndarray:
        log_move = np.asarray(pred, dtype="float64") * self.std + self.mean
        return np.asarray(prev_price, dtype="float64") * np.exp(log_move)

    def _state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}


_KINDS: dict[str, type[Representation]] = {
    GlobalMinMax.kind: GlobalMinMax,
    RelativeLogReturn.kind: RelativeLogReturn,
}


def make_representation(kind: str, look_back: int) -> Representation:
    """An unfitted representation by name (``global_minmax`` or ``relative_log_return``)."""
    try:
        return _KINDS[kind](look_back)
    except KeyError:
        raise ValueError(f"unknown representation {kind!r}; valid: {', '.join(_KINDS)}") from None


def representation_from_dict(data: dict[str, Any]) -> Representation:
    kind = data.get("kind")
    if kind == GlobalMinMax.kind:
        return GlobalMinMax(
            data["look_back"], MinMaxScaler(data_min=data["data_min"], data_max=data["data_max"])
        )
    if kind == RelativeLogReturn.kind:
        return RelativeLogReturn(data["look_back"], mean=data["mean"], std=data["std"])
    raise ValueError(f"unknown representation {kind!r} in saved state")


def representation_from_json(text: str) -> Representation:
    return representation_from_dict(json.loads(text))
