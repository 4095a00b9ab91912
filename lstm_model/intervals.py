"""Split-conformal prediction intervals in price units, from a model's own residuals.

Work in log space: a residual is ``r = log(actual / predicted)``. The interval at level ``a``
around a prediction ``p`` is ``[p * exp(-q_a), p * exp(+q_a)]`` where ``q_a`` (the *radius*)
is the conformal quantile of ``|r|`` over ``n`` calibration residuals: the
``ceil((n + 1) * a)``-th smallest ``|r|`` (the finite-sample correction that makes coverage at
least ``a`` when calibration and scored days are exchangeable). With too few residuals for
that rank (``ceil((n + 1) * a) > n``) the radius is infinite: the honest answer is "no
bound yet". Log space keeps the band multiplicative, so it scales with the price level and
the lower bound stays positive.

**Volatility scaling** (the default, ``scaled=True``). Daily returns are not exchangeable:
calm and stormy months alternate, and a band calibrated in a calm year covers far less in a
crash (measured on the shipped histories, whose test year holds March 2020: 63% instead of
80%). So the score of a residual is ``r / sigma`` where ``sigma`` is the RiskMetrics EWMA
volatility of daily log returns (decay 0.94) *at the forecast's origin*, known before the
forecast is made (:func:`ewma_volatility`). The radius for a forecast is then
``q_a * sigma_origin``: normalised (locally weighted) conformal prediction.

**Where residuals may come from.** Only from days the model never trained on, and never from
the days being scored:

1. the validation slice at the end of the training period (``meta["val_start"]`` on; see
   :func:`lstm_model.horizons.validation_backtest`); it is not used for gradient steps,
   only for early stopping and the shrinkage gain (two scalar choices, so these residuals are
   at most mildly optimistic);
2. then the live record as it grows (served forecasts whose actual has arrived).

:func:`backtest_bounds` does the same inside a backtest: with ``sequential=True`` the
interval for test day ``i`` is calibrated on the validation residuals plus the test residuals
of days *before* ``i``, which is what a production run would have known that day.

Multi-step forecasts get one radius per horizon step (the error of a 5-day-ahead forecast is
wider than a 1-day one): :class:`Calibration` holds ``radii[level][step - 1]``.

Long-form frames (as :func:`lstm_model.horizons.path_backtest` returns) have the columns
``origin`` (last known date), ``step``, ``date`` (target), ``actual`` and ``predicted``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lstm_model.metrics import coverage

__all__ = [
    "DEFAULT_DECAY",
    "LEVELS",
    "Calibration",
    "PriceInterval",
    "backtest_bounds",
    "band_columns",
    "bound_columns",
    "calibrate",
    "calibrate_frame",
    "conformal_radius",
    "coverage",
    "ewma_volatility",
    "forecast_bounds",
    "interval",
    "level_label",
    "log_residuals",
    "path_bounds",
    "scores",
    "sequential_bounds",
    "sequential_radii",
    "sequential_radii_at",
    "volatility_at",
]

LEVELS: tuple[float, ...] = (0.8, 0.95)
"""The levels served and published (80% and 95%)."""

DEFAULT_DECAY = 0.94
"""RiskMetrics' decay for daily returns (an EWMA half-life of about 11 trading days)."""

_MIN_SCALE = 1e-12  # a flat stretch of prices has zero volatility; keep scores finite


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


def band_columns(levels: Sequence[float] = LEVELS) -> tuple[str, ...]:
    """Every bound column at ``levels``, lower then upper per level: ``("lower_80",
    "upper_80", "lower_95", "upper_95")`` for the levels served."""
    return tuple(column for level in levels for column in bound_columns(level))


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
    return _radius_of_sorted(np.sort(np.abs(_finite_1d(residuals, "residuals"))), level)


def _radius_of_sorted(scores: Sequence[float], level: float) -> float:
    """:func:`conformal_radius` of scores already sorted ascending."""
    n = len(scores)
    # The epsilon absorbs float error in (n + 1) * level (e.g. 9 * 0.8 = 7.200000000000001).
    rank = math.ceil((n + 1) * level - 1e-9)
    if rank > n:
        return math.inf
    return float(scores[rank - 1])


def sequential_radii(
    calibration: Any,
    scored: Any,
    level: float,
    *,
    window: int | None = None,
    lag: int = 0,
) -> np.ndarray:
    """One radius per scored day, each from the scores known when its forecast was made.

    Day ``i`` is calibrated on ``calibration`` followed by ``scored[: i - lag]`` (optionally
    only the last ``window`` of those), never on ``scored[i]`` itself: a backtest that mimics
    a live record growing day by day. For ``h``-step forecasts use ``lag = h - 1``: the
    forecast for day ``i`` was issued ``h`` days earlier, when the outcomes of days
    ``i - h + 1 .. i - 1`` were not known yet.

    Args:
        calibration: Scores available before the first scored day (validation slice).
        scored: Scores of the scored days, in date order.
        level: Nominal coverage.
        window: Use at most this many most recent scores (``None``: all).
        lag: Scored days whose outcome was still unknown at each forecast's origin.
    """
    return sequential_radii_at(calibration, scored, (level,), window=window, lag=lag)[level]


def sequential_radii_at(
    calibration: Any,
    scored: Any,
    levels: Sequence[float],
    *,
    window: int | None = None,
    lag: int = 0,
) -> dict[float, np.ndarray]:
    """:func:`sequential_radii` at each of ``levels``, from one pass over the scores."""
    levels = [_check_level(level) for level in levels]
    if window is not None and window < 1:
        raise ValueError(f"window must be None or >= 1, got {window!r}")
    if lag < 0:
        raise ValueError(f"lag must be >= 0, got {lag!r}")
    before = _finite_1d(calibration, "calibration")
    known = np.abs(np.concatenate([before, _finite_1d(scored, "scored")]))
    n_cal = before.size
    days = known.size - n_cal
    ends = n_cal + np.maximum(0, np.arange(days) - lag)
    starts = np.zeros(days, dtype=int) if window is None else np.maximum(0, ends - window)
    sizes = (ends - starts).tolist()
    # Each day's rank (see _radius_of_sorted), computed for all days at once.
    ranks = [_ranks(sizes, level) for level in levels]
    out = [np.empty(days) for _ in levels]
    # The scores available to day i are known[lo:hi]; both ends only move forward, so one
    # sorted pool is updated day by day instead of sorting every day's scores afresh.
    pool: list[float] = []
    lo = hi = 0
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        for value in known[hi:end].tolist():
            bisect.insort(pool, value)
        for value in known[lo:start].tolist():
            del pool[bisect.bisect_left(pool, value)]
        lo, hi = start, end
        for radii, rank in zip(out, ranks, strict=True):
            radii[i] = pool[rank[i] - 1] if rank[i] <= sizes[i] else math.inf
    return dict(zip(levels, out, strict=True))


def _ranks(sizes: list[int], level: float) -> list[int]:
    """:func:`_radius_of_sorted`'s rank for pools of each of ``sizes``."""
    return [math.ceil((n + 1) * level - 1e-9) for n in sizes]


def ewma_volatility(prices: pd.Series, *, decay: float = DEFAULT_DECAY) -> pd.Series:
    """EWMA volatility of daily log returns, known at the close of each date.

    ``sigma_d ** 2 = decay * sigma_{d-1} ** 2 + (1 - decay) * r_d ** 2`` with ``r_d`` the
    log return into ``d``, started at the first squared return. The value at ``d`` uses
    prices up to ``d`` only, so it may scale a forecast whose origin is ``d``.

    Args:
        prices: Positive prices on an ascending DatetimeIndex.
        decay: In (0, 1); larger reacts more slowly.

    Returns:
        A Series on ``prices.index`` (NaN on the first date: no return yet), floored at a tiny
        positive value so that a flat stretch does not divide by zero.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
    values = prices.to_numpy(dtype="float64")
    if values.size and values.min() <= 0:
        raise ValueError(f"prices must be positive (minimum {values.min()})")
    squared = np.full(values.shape, np.nan)
    squared[1:] = np.square(np.diff(np.log(values)))
    variance = pd.Series(squared).ewm(alpha=1.0 - decay, adjust=False, ignore_na=True).mean()
    # NumPy around pandas' recursion: a run computes this for every model of every ticker.
    volatility = np.maximum(np.sqrt(variance.to_numpy()), _MIN_SCALE)
    return pd.Series(volatility, index=prices.index, name="volatility")


def volatility_at(volatility: pd.Series, origins: pd.DatetimeIndex) -> np.ndarray:
    """:func:`ewma_volatility` at each forecast origin.

    Raises:
        ValueError: An origin without a value (not a price date, or the first one).
    """
    # A lookup, not reindex: a run scales every backtest of every model of every ticker.
    positions = volatility.index.get_indexer(origins)
    scale = volatility.to_numpy(dtype="float64")[positions]
    scale[positions < 0] = np.nan
    if np.isnan(scale).any():
        missing = origins[np.isnan(scale)][0]
        raise ValueError(f"volatility has no value at forecast origin {missing:%Y-%m-%d}")
    return scale


def _origin_scale(frame: pd.DataFrame, volatility: pd.Series | None) -> np.ndarray:
    if volatility is None:
        return np.ones(len(frame))
    return volatility_at(volatility, pd.DatetimeIndex(frame["origin"]))


def scores(frame: pd.DataFrame, volatility: pd.Series | None) -> np.ndarray:
    """Conformity scores of a long-form frame: ``log(actual / predicted) / sigma_origin``.

    Args:
        frame: Columns ``origin, actual, predicted`` (one row per scored forecast).
        volatility: :func:`ewma_volatility` of the ticker's prices (covering every origin);
            ``None`` for unscaled log residuals.
    """
    _require(frame, ("origin", "actual", "predicted"))
    return log_residuals(frame["actual"], frame["predicted"]) / _origin_scale(frame, volatility)


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s): {', '.join(missing)}")


@dataclass(frozen=True)
class Calibration:
    """Conformal radii per level and horizon step, with how many residuals each used.

    Attributes:
        radii: ``{level: (radius at step 1, radius at step 2, ...)}``; in log units, or in
            units of the origin's volatility when ``scaled``.
        n: Residuals per step (``n[0]`` for step 1).
        source: Where the residuals came from (e.g. ``"validation"``, ``"validation+live"``).
        scaled: Whether the radii multiply the EWMA volatility at the forecast origin.
    """

    radii: Mapping[float, tuple[float, ...]]
    n: tuple[int, ...]
    source: str = "validation"
    scaled: bool = True

    @property
    def horizon(self) -> int:
        """Number of steps calibrated."""
        return len(self.n)

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(sorted(self.radii))

    def radius(self, level: float, step: int = 1, scale: Any = 1.0) -> Any:
        """Log-space radius at ``level`` for ``step`` steps ahead (1-based).

        Args:
            level: A calibrated level.
            step: A calibrated step.
            scale: The EWMA volatility at the origin(s) when :attr:`scaled` (scalar or array).

        Raises:
            KeyError: The level or step was not calibrated (the message lists what was).
        """
        if level not in self.radii:
            raise KeyError(f"level {level!r} not calibrated; calibrated: {list(self.levels)}")
        if not 1 <= step <= self.horizon:
            raise KeyError(f"step {step!r} not calibrated; calibrated steps 1..{self.horizon}")
        radius = self.radii[level][step - 1]
        return radius * np.asarray(scale, dtype="float64") if self.scaled else radius

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``inf`` radii become ``None``), e.g. for a model's ``meta.json``."""
        return {
            "source": self.source,
            "scaled": self.scaled,
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
        return cls(
            radii=radii,
            n=tuple(int(k) for k in data["n"]),
            source=data["source"],
            scaled=bool(data["scaled"]),
        )


def calibrate(
    scores_by_step: Sequence[Any],
    levels: Sequence[float] = LEVELS,
    *,
    source: str = "validation",
    scaled: bool = True,
) -> Calibration:
    """Radii for every level and step from out-of-sample scores.

    Args:
        scores_by_step: One 1-D array of scores per step (``[step-1, step-2, ...]``; lengths
            may differ). Scores are log residuals, divided by the origin's volatility when
            ``scaled`` (see :func:`scores`).
        levels: Nominal coverages.
        source: Recorded in the result.
        scaled: Whether the scores were volatility-scaled.

    Raises:
        ValueError: No step given, or a bad score / level.
    """
    steps = [_finite_1d(s, f"scores of step {i + 1}") for i, s in enumerate(scores_by_step)]
    if not steps:
        raise ValueError("scores_by_step is empty: need scores for at least one step")
    radii = {
        _check_level(level): tuple(conformal_radius(s, level) for s in steps) for level in levels
    }
    return Calibration(
        radii=radii, n=tuple(int(s.size) for s in steps), source=source, scaled=scaled
    )


def _scores_by_step(
    frame: pd.DataFrame, volatility: pd.Series | None, horizon: int
) -> list[np.ndarray]:
    _require(frame, ("step",))
    values = scores(frame, volatility)
    steps = frame["step"].to_numpy()
    return [values[steps == k] for k in range(1, horizon + 1)]


def calibrate_frame(
    frame: pd.DataFrame,
    volatility: pd.Series | None,
    *,
    horizon: int | None = None,
    levels: Sequence[float] = LEVELS,
    source: str = "validation",
) -> Calibration:
    """:func:`calibrate` from a long-form frame of out-of-sample forecasts.

    Args:
        frame: Columns ``origin, step, actual, predicted``: the validation backtest
            (:func:`lstm_model.horizons.validation_backtest`), optionally followed by the
            scored live record.
        volatility: :func:`ewma_volatility` of the ticker's prices, or ``None`` (unscaled).
        horizon: Steps to calibrate (default: the largest step in ``frame``).
        levels: Nominal coverages.
        source: Recorded in the result.
    """
    horizon = horizon or int(frame["step"].max())
    return calibrate(
        _scores_by_step(frame, volatility, horizon),
        levels,
        source=source,
        scaled=volatility is not None,
    )


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


def forecast_bounds(
    path: Any, calibration: Calibration, *, scale: float | None = None
) -> pd.DataFrame:
    """Bounds around a served forecast path (one value per step, step 1 first).

    Args:
        path: Forecasts for steps ``1..len(path)`` from one origin.
        calibration: Radii covering at least ``len(path)`` steps.
        scale: The EWMA volatility at the origin (``ewma_volatility(prices).iloc[-1]``);
            required when ``calibration.scaled``, ignored otherwise.

    Returns:
        Columns ``step, forecast, lower_80, upper_80, lower_95, upper_95`` (per level).

    Raises:
        ValueError: A scaled calibration without ``scale``.
    """
    bounds = path_bounds(path, calibration, scale=scale)
    forecast = _finite_1d(path, "path")
    return pd.DataFrame({"step": np.arange(1, forecast.size + 1), "forecast": forecast} | bounds)


def path_bounds(
    path: Any, calibration: Calibration, *, scale: float | None = None
) -> dict[str, np.ndarray]:
    """The bound columns of :func:`forecast_bounds` as arrays (``{"lower_80": ...}``), for
    a caller that needs the numbers only (every served forecast of every model).

    Raises:
        ValueError: A scaled calibration without ``scale``.
    """
    if calibration.scaled and (scale is None or not math.isfinite(scale) or scale <= 0):
        raise ValueError(
            f"a volatility-scaled calibration needs the origin's volatility, got scale={scale!r}"
        )
    scale = 1.0 if scale is None else scale
    forecast = _finite_1d(path, "path")
    steps = np.arange(1, forecast.size + 1)
    columns: dict[str, np.ndarray] = {}
    for level in calibration.levels:
        radius = [calibration.radius(level, k, scale) for k in steps]
        bounds = interval(forecast, np.asarray(radius, dtype="float64"), level)
        lower, upper = bound_columns(level)
        columns[lower], columns[upper] = bounds.lower, bounds.upper
    return columns


def backtest_bounds(
    frame: pd.DataFrame,
    calibration_frame: pd.DataFrame,
    volatility: pd.Series | None,
    *,
    levels: Sequence[float] = LEVELS,
    sequential: bool = True,
    window: int | None = None,
) -> pd.DataFrame:
    """Add bound columns to a backtest, calibrated without the days being scored.

    Args:
        frame: The scored backtest, long form (``origin, step, date, actual, predicted``).
        calibration_frame: Out-of-sample forecasts from before the backtest (the validation
            backtest), same columns.
        volatility: :func:`ewma_volatility` of the prices (``None``: unscaled).
        levels: Nominal coverages.
        sequential: Calibrate each day on ``calibration_frame`` plus the backtest days
            *before* it (scored by date), as a live record grows; ``False`` uses
            ``calibration_frame`` alone for every day.
        window: With ``sequential``, use at most this many most recent scores.

    Returns:
        A copy of ``frame`` with ``lower_80, upper_80, lower_95, upper_95`` (per level).
    """
    _require(frame, ("origin", "step", "date", "actual", "predicted"))
    # Arrays throughout, one frame at the end: every backtest of every model of every ticker.
    steps = frame["step"].to_numpy()
    dates = pd.DatetimeIndex(frame["date"]).asi8
    all_scores = scores(frame, volatility)
    scale = _origin_scale(frame, volatility)
    predicted = frame["predicted"].to_numpy(dtype="float64")
    known_steps = calibration_frame["step"].to_numpy()
    calibrating = calibration_frame[np.isin(known_steps, steps)]
    known_steps = calibrating["step"].to_numpy()
    known_all = scores(calibrating, volatility) if len(calibrating) else np.empty(0)
    bounds = {column: np.full(len(frame), np.nan) for column in band_columns(levels)}
    for step in np.unique(steps):
        rows = np.flatnonzero(steps == step)
        rows = rows[np.argsort(dates[rows], kind="stable")]  # scored in date order
        banded = sequential_bounds(
            known_all[known_steps == step],
            all_scores[rows],
            predicted[rows],
            scale[rows],
            levels=levels,
            sequential=sequential,
            window=window,
            lag=int(step) - 1,
        )
        for column, values in banded.items():
            bounds[column][rows] = values
    return frame.assign(**bounds)


def sequential_bounds(
    calibration_scores: Any,
    scored_scores: Any,
    predicted: Any,
    scale: Any,
    *,
    levels: Sequence[float] = LEVELS,
    sequential: bool = True,
    window: int | None = None,
    lag: int = 0,
) -> dict[str, np.ndarray]:
    """The bounds of :func:`backtest_bounds` for one step's scored days, on arrays.

    Args:
        calibration_scores: Conformity scores from before the first scored day.
        scored_scores: The scored days' conformity scores, in date order.
        predicted: The scored days' forecasts, same order.
        scale: The volatility at each scored day's origin (ones when unscaled).
        levels: Nominal coverages.
        sequential: As in :func:`backtest_bounds`.
        window: As in :func:`backtest_bounds`.
        lag: The step minus one (see :func:`sequential_radii`).

    Returns:
        ``{"lower_80": ..., "upper_80": ..., ...}`` per level, in the scored days' order.
    """
    scale = np.asarray(scale, dtype="float64")
    if sequential:
        radii = sequential_radii_at(
            calibration_scores, scored_scores, levels, window=window, lag=lag
        )
    else:
        known = np.sort(np.abs(_finite_1d(calibration_scores, "calibration")))
        radii = {level: np.full(scale.size, _radius_of_sorted(known, level)) for level in levels}
    out: dict[str, np.ndarray] = {}
    for level in levels:
        band = interval(predicted, radii[level] * scale, level)
        lower, upper = bound_columns(level)
        out[lower], out[upper] = band.lower, band.upper
    return out
