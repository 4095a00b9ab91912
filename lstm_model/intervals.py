"""Split-conformal prediction intervals in price units, from a model's own residuals.

Work in log space: a residual is ``r = log(actual / predicted)``. The interval at level ``a``
around a prediction ``p`` is ``[p * exp(-q_a), p * exp(+q_a)]`` where ``q_a`` (the *radius*)
is the conformal quantile of ``|r|`` over ``n`` calibration residuals: the
``ceil((n + 1) * a)``-th smallest ``|r|`` (the finite-sample correction that makes coverage at
least ``a`` when calibration and scored days are exchangeable). With too few residuals for
that rank (``ceil((n + 1) * a) > n``) the radius is infinite: the honest answer is "no
bound yet". Log space keeps the band multiplicative, so it scales with the price level and
the lower bound stays positive.

**Where residuals may come from.** Only from days the model never trained on, and never from
the days being scored:

1. the validation slice at the end of the training period (``meta["val_start"]`` on); it
   is not used for gradient steps, only for early stopping and the shrinkage gain (two
   scalar choices, so these residuals are at most mildly optimistic);
2. then the live record as it grows (served forecasts whose actual has arrived).

:func:`sequential_radii` does the same inside a backtest: the interval for test day ``i``
is calibrated on the validation residuals plus the test residuals of days *before* ``i``,
which is what a production run would have known that day.

Multi-step forecasts get one radius per horizon step (the error of a 5-day-ahead forecast is
wider than a 1-day one): :class:`Calibration` holds ``radii[level][step - 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lstm_model.metrics import coverage

__all__ = [
    "LEVELS",
    "Calibration",
    "PriceInterval",
    "bound_columns",
    "calibrate",
    "conformal_radius",
    "coverage",
    "interval",
    "interval_frame",
    "level_label",
    "log_residuals",
    "sequential_radii",
]

LEVELS: tuple[float, ...] = (0.8, 0.95)
"""The levels served and published (80% and 95%)."""


def _finite_1d(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64").reshape(-1)
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} has a NaN/infinite value at position {bad}")
    return array


def _check_level(level: float) -> float:
    if not isinstance(level, int | float) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level!r}")
    return float(level)


def level_label(level: float) -> str:
    """``0.8 -> "80"``, ``0.95 -> "95"``, ``0.975 -> "97.5"`` (used in column names)."""
    return f"{100 * _check_level(level):g}"


def bound_columns(level: float) -> tuple[str, str]:
    """Column names of the bounds at ``level``: ``("lower_80", "upper_80")`` for 0.8."""
    label = level_label(level)
    return f"lower_{label}", f"upper_{label}"


def log_residuals(actual: Any, predicted: Any) -> np.ndarray:
    """``log(actual / predicted)`` for aligned positive arrays (compared by position).

    Raises:
        ValueError: Different lengths, or a non-positive / non-finite value (named).
    """
    a = _finite_1d(actual, "actual")
    p = _finite_1d(predicted, "predicted")
    if a.shape != p.shape:
        raise ValueError(f"actual has {a.size} values but predicted has {p.size}")
    for name, values in (("actual", a), ("predicted", p)):
        if values.size and values.min() <= 0:
            raise ValueError(f"{name} must be positive (minimum {values.min()})")
    return np.log(a / p)


def conformal_radius(residuals: Any, level: float) -> float:
    """The split-conformal radius: the ``ceil((n + 1) * level)``-th smallest ``|residual|``.

    Args:
        residuals: Out-of-sample log residuals (see the module docstring for which days).
        level: Nominal coverage in (0, 1), e.g. 0.8.

    Returns:
        The radius in log units; ``inf`` when there are too few residuals for the level
        (fewer than ``ceil(level / (1 - level))``, e.g. 4 for 80%, 19 for 95%).
    """
    level = _check_level(level)
    scores = np.sort(np.abs(_finite_1d(residuals, "residuals")))
    n = scores.size
    # The epsilon absorbs float error in (n + 1) * level (e.g. 9 * 0.8 = 7.200000000000001).
    rank = math.ceil((n + 1) * level - 1e-9)
    if rank > n:
        return math.inf
    return float(scores[rank - 1])


def sequential_radii(
    calibration: Any, scored: Any, level: float, *, window: int | None = None
) -> np.ndarray:
    """One radius per scored day, each from the residuals known before that day.

    Day ``i`` is calibrated on ``calibration`` followed by ``scored[:i]`` (optionally only the
    last ``window`` of those), never on ``scored[i]`` itself: a backtest that mimics a live
    record growing day by day.

    Args:
        calibration: Residuals available before the first scored day (validation slice).
        scored: Residuals of the scored days, in date order.
        level: Nominal coverage.
        window: Use at most this many most recent residuals (``None``: all).
    """
    level = _check_level(level)
    if window is not None and window < 1:
        raise ValueError(f"window must be None or >= 1, got {window!r}")
    before = _finite_1d(calibration, "calibration")
    known = np.abs(np.concatenate([before, _finite_1d(scored, "scored")]))
    n_cal = before.size
    out = np.empty(known.size - n_cal)
    for i in range(out.size):
        available = known[: n_cal + i]
        if window is not None:
            available = available[-window:]
        out[i] = conformal_radius(available, level)
    return out


@dataclass(frozen=True)
class Calibration:
    """Conformal radii per level and horizon step, with how many residuals each used.

    Attributes:
        radii: ``{level: (radius at step 1, radius at step 2, ...)}`` in log units.
        n: Residuals per step (``n[0]`` for step 1).
        source: Where the residuals came from (e.g. ``"validation"``, ``"validation+live"``).
    """

    radii: Mapping[float, tuple[float, ...]]
    n: tuple[int, ...]
    source: str = "validation"

    @property
    def horizon(self) -> int:
        """Number of steps calibrated."""
        return len(self.n)

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(sorted(self.radii))

    def radius(self, level: float, step: int = 1) -> float:
        """Radius at ``level`` for ``step`` steps ahead (1-based).

        Raises:
            KeyError: The level or step was not calibrated (the message lists what was).
        """
        if level not in self.radii:
            raise KeyError(f"level {level!r} not calibrated; calibrated: {list(self.levels)}")
        if not 1 <= step <= self.horizon:
            raise KeyError(f"step {step!r} not calibrated; calibrated steps 1..{self.horizon}")
        return self.radii[level][step - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``inf`` radii become ``None``), e.g. for a model's ``meta.json``."""
        return {
            "source": self.source,
            "n": list(self.n),
            "radii": {
                level_label(level): [None if math.isinf(r) else r for r in radii]
                for level, radii in sorted(self.radii.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        radii = {
            float(label) / 100: tuple(math.inf if r is None else float(r) for r in values)
            for label, values in data["radii"].items()
        }
        return cls(radii=radii, n=tuple(int(k) for k in data["n"]), source=data["source"])


def calibrate(
    residuals_by_step: Sequence[Any],
    levels: Sequence[float] = LEVELS,
    *,
    source: str = "validation",
) -> Calibration:
    """Radii for every level and step from out-of-sample log residuals.

    Args:
        residuals_by_step: One 1-D array of log residuals per step:
            ``[step-1 residuals, step-2 residuals, ...]`` (``[residuals]`` for one-step
            forecasts). Lengths may differ: later steps have fewer scored origins.
        levels: Nominal coverages.
        source: Recorded in the result.

    Raises:
        ValueError: No step given, or a bad residual / level.
    """
    steps = [_finite_1d(s, f"residuals of step {i + 1}") for i, s in enumerate(residuals_by_step)]
    if not steps:
        raise ValueError("residuals_by_step is empty: need residuals for at least one step")
    radii = {
        _check_level(level): tuple(conformal_radius(s, level) for s in steps) for level in levels
    }
    return Calibration(radii=radii, n=tuple(int(s.size) for s in steps), source=source)


@dataclass(frozen=True)
class PriceInterval:
    """Bounds in price units around predictions at one level."""

    level: float
    lower: np.ndarray
    upper: np.ndarray


def interval(predicted: Any, radius: Any, level: float) -> PriceInterval:
    """``predicted * exp(-radius)`` .. ``predicted * exp(+radius)`` (radius scalar or per row).

    An infinite radius gives ``0`` .. ``inf``: no bound.
    """
    p = _finite_1d(predicted, "predicted")
    q = np.broadcast_to(np.asarray(radius, dtype="float64"), p.shape)
    if np.any(np.isnan(q)) or np.any(q < 0):
        raise ValueError("radius must be >= 0 (or inf)")
    return PriceInterval(level=_check_level(level), lower=p * np.exp(-q), upper=p * np.exp(q))


def interval_frame(
    predicted: pd.Series, calibration: Calibration, *, step: int = 1
) -> pd.DataFrame:
    """Bound columns (``lower_80, upper_80, lower_95, upper_95``) beside predictions.

    Args:
        predicted: Predictions (any index; kept).
        calibration: Radii from :func:`calibrate`.
        step: Which horizon step the predictions are (1 = one step ahead).
    """
    columns: dict[str, np.ndarray] = {}
    for level in calibration.levels:
        bounds = interval(predicted.to_numpy(), calibration.radius(level, step), level)
        lower, upper = bound_columns(level)
        columns[lower], columns[upper] = bounds.lower, bounds.upper
    return pd.DataFrame(columns, index=predicted.index)
