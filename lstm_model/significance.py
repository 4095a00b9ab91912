"""Is the model better than naive, or lucky? The Diebold-Mariano test.

The loss differential of day ``t`` is ``d_t = e_model_t ** 2 - e_naive_t ** 2`` (squared
errors in price units); the null hypothesis is ``E[d] = 0`` (equal accuracy). For ``h``-step
forecasts errors are autocorrelated up to lag ``h - 1``, so the variance of the mean uses the
autocovariances ``gamma_k = (1/n) * sum_t (d_t - dbar)(d_{t-k} - dbar)`` for ``k < h``:

    V = (gamma_0 + 2 * sum_{k=1}^{h-1} gamma_k) / n,    DM = dbar / sqrt(V).

Harvey, Leybourne & Newbold (1997) correct the small-sample size of the test:

    DM* = DM * sqrt((n + 1 - 2h + h(h - 1) / n) / n),

compared with Student's t with ``n - 1`` degrees of freedom. ``p_value`` is one-sided for the
alternative "the model is better than naive" (``E[d] < 0``); ``p_value_two_sided`` for
"different".

The same standard error gives a confidence interval for ``E[d]`` and hence for the MSE ratio
``MSE_model / MSE_naive = 1 + E[d] / MSE_naive`` (taking the naive MSE of the scored days as
the fixed yardstick, as the test does) and for U2 = its square root. By construction the 95%
U2 interval excludes 1 exactly when the two-sided test rejects at 5%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "EVIDENCE_ALPHA",
    "DieboldMarianoResult",
    "describe_evidence",
    "diebold_mariano",
    "evidence",
    "loss_differential",
]


@dataclass(frozen=True)
class DieboldMarianoResult:
    """Outcome of :func:`diebold_mariano`.

    Attributes:
        statistic: The HLN-corrected statistic ``DM*`` (negative: model errors smaller).
        p_value: One-sided p-value for "model better than naive".
        p_value_two_sided: Two-sided p-value for "model and naive differ".
        mean_differential: ``dbar``, mean of ``e_model ** 2 - e_naive ** 2``.
        std_error: HLN-corrected standard error of ``dbar`` (``dbar / statistic``).
        mse_model: Mean squared error of the model.
        mse_naive: Mean squared error of the naive forecast.
        n: Number of scored days.
        horizon: Forecast horizon ``h`` the autocovariances were taken for.
    """

    statistic: float
    p_value: float
    p_value_two_sided: float
    mean_differential: float
    std_error: float
    mse_model: float
    mse_naive: float
    n: int
    horizon: int

    @property
    def u2(self) -> float:
        """Theil's U2 of the scored days: ``sqrt(mse_model / mse_naive)``."""
        return _sqrt_ratio(self.mse_model, self.mse_naive)

    def mse_ratio_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Interval for ``MSE_model / MSE_naive``: ``1 + (dbar -+ t * se) / mse_naive``.

        The lower end is clipped at 0 (an MSE ratio cannot be negative). Degenerate cases: no
        variance (``se == 0``) gives the point ratio at both ends.
        """
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        if self.mse_naive == 0:
            ratio = 1.0 if self.mse_model == 0 else math.inf
            return ratio, ratio
        t = float(stats.t.ppf(0.5 + confidence / 2, df=max(self.n - 1, 1)))
        half = t * self.std_error if math.isfinite(self.std_error) else math.inf
        low = max(0.0, 1.0 + (self.mean_differential - half) / self.mse_naive)
        high = 1.0 + (self.mean_differential + half) / self.mse_naive
        return low, high

    def u2_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The :meth:`mse_ratio_interval` on the U2 scale (its square root)."""
        low, high = self.mse_ratio_interval(confidence)
        return math.sqrt(low), math.sqrt(high)


def _sqrt_ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return 0.0 if numerator == 0 else math.inf
    return math.sqrt(numerator / denominator)


def _errors(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64").reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has NaN/infinite values; align and drop them first")
    return array


def loss_differential(actual: Any, predicted: Any, naive: Any) -> np.ndarray:
    """``(actual - predicted) ** 2 - (actual - naive) ** 2`` per day (aligned by position)."""
    a = _errors(actual, "actual")
    p = _errors(predicted, "predicted")
    b = _errors(naive, "naive")
    if not a.size == p.size == b.size:
        raise ValueError(f"actual has {a.size} values, predicted {p.size}, naive {b.size}")
    return (a - p) ** 2 - (a - b) ** 2


def _autocovariance(d: np.ndarray, lag: int) -> float:
    centred = d - d.mean()
    return float(np.dot(centred[lag:], centred[: d.size - lag]) / d.size)


def diebold_mariano(
    actual: Any, predicted: Any, naive: Any, *, horizon: int = 1
) -> DieboldMarianoResult:
    """Diebold-Mariano test (HLN-corrected) of squared-error loss, model vs naive.

    Args:
        actual: Actual prices of the scored days.
        predicted: The model's forecasts for them.
        naive: The naive forecasts for them (the last price known at each forecast's origin).
        horizon: Steps ahead of the forecasts (autocovariances up to lag ``horizon - 1``).

    Returns:
        The statistic, one- and two-sided p-values and the pieces they came from. When the
        model and naive losses are identical every day (a model that fell back to naive) the
        statistic is 0 and the p-values are 0.5 and 1: no evidence either way. If the
        long-run variance estimate is not positive (possible for ``horizon > 1`` on short
        samples) the lag-0 variance is used instead.

    Raises:
        ValueError: Fewer than 2 days, ``horizon`` out of range, or bad values.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    # Each input converted and checked once (a Series costs far more to convert than an
    # array, and a run tests every record of every model of every ticker).
    a = _errors(actual, "actual")
    p = _errors(predicted, "predicted")
    b = _errors(naive, "naive")
    d = loss_differential(a, p, b)
    n = d.size
    if n < 2:
        raise ValueError(f"the Diebold-Mariano test needs at least 2 scored days, got {n}")
    if horizon >= n:
        raise ValueError(f"horizon {horizon} needs more than {horizon} scored days, got {n}")
    mse_model = float(np.mean((a - p) ** 2))
    mse_naive = float(np.mean((a - b) ** 2))
    dbar = float(d.mean())
    gamma0 = _autocovariance(d, 0)
    long_run = gamma0 + 2.0 * sum(_autocovariance(d, k) for k in range(1, horizon))
    if long_run <= 0:
        long_run = gamma0
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    std_error = math.sqrt(long_run / n) / hln
    statistic = _statistic(dbar, std_error)
    df = n - 1
    p_less = float(stats.t.cdf(statistic, df))
    p_two = float(min(1.0, 2.0 * min(p_less, stats.t.sf(statistic, df))))
    return DieboldMarianoResult(
        statistic=statistic,
        p_value=p_less,
        p_value_two_sided=p_two,
        mean_differential=dbar,
        std_error=std_error,
        mse_model=mse_model,
        mse_naive=mse_naive,
        n=n,
        horizon=horizon,
    )


def _statistic(dbar: float, std_error: float) -> float:
    if std_error > 0:
        return dbar / std_error
    if dbar == 0:
        return 0.0
    return math.copysign(math.inf, dbar)


EVIDENCE_ALPHA = 0.025
"""One-sided level of "evidence": p < 0.025 exactly when the 95% U2 interval lies below 1,
so the words, the scoreboard colours and the serving policy agree."""


def evidence(result: DieboldMarianoResult, alpha: float = EVIDENCE_ALPHA) -> str:
    """``"better"`` (p < alpha), ``"worse"`` (p > 1 - alpha) or ``"unclear"``."""
    if result.p_value < alpha:
        return "better"
    if result.p_value > 1.0 - alpha:
        return "worse"
    return "unclear"


def describe_evidence(
    results: Mapping[str, DieboldMarianoResult],
    *,
    alpha: float = EVIDENCE_ALPHA,
    what: str = "backtest",
) -> str:
    """Say in words which tickers show evidence of beating naive and which do not.

    Args:
        results: Ticker -> its Diebold-Mariano result.
        alpha: One-sided significance level.
        what: Which record the results come from (``"backtest"``, ``"live record"``).

    Returns:
        Markdown: one line per verdict that has tickers, each ticker with its U2 and p-value.
    """
    if not results:
        return f"No ticker has a scored {what} yet."
    groups: dict[str, list[str]] = {"better": [], "unclear": [], "worse": []}
    for ticker, result in results.items():
        groups[evidence(result, alpha)].append(
            f"{ticker} (U2 {result.u2:.4f}, p {result.p_value:.3g}, n {result.n})"
        )
    titles = {
        "better": f"Beats naive with evidence (one-sided Diebold-Mariano p < {alpha:g})",
        "unclear": "No evidence either way (the difference from naive may be luck)",
        "worse": f"Worse than naive with evidence (p > {1 - alpha:g})",
    }
    lines = [f"**{what.capitalize()}**, {len(results)} ticker(s):"]
    lines += [f"- {titles[k]}: {', '.join(v)}" for k, v in groups.items() if v]
    return "\n".join(lines)
