"""One LSTM over the whole watchlist: the global model ``global_lstm``.

Every ticker's daily log returns are standardised with that ticker's own training mean and
standard deviation, cut into ``look_back``-day windows, and the windows of every ticker with
enough history are pooled to train one small Keras network (the per-ticker models learn from
about 1000 days each; the pool has hundreds of times more windows). What stays per ticker:

* the standardisation (mean, std of its training log returns), so a prediction ``z`` maps
  back to ``prev * exp(gain * (z * std + mean))``;
* the shrinkage gain, fit on the ticker's own validation days (a ticker with too few of them
  gets the median gain of the others).

Training is cut BY DATE: :meth:`GlobalLSTM.fit` takes a ``cut`` date and uses only prices
dated before it, for every ticker whatever its calendar (crypto trades on weekends), so no
window whose target is on or after the cut is trained on. The validation days (early
stopping, gains) are the last ``validation_fraction`` of the pooled target dates before the
cut, the same dates for every ticker.

Optional inputs (:data:`INPUTS`), each off unless named in ``GlobalLSTMConfig.inputs``:

* ``market``: the cross-sectional mean of the standardised returns of the tickers given, on
  each day of the window;
* ``volume``: the standardised log change of the ticker's volume;
* ``weekday``: the day of week of each window day (as sine and cosine).

``market`` and ``volume`` need other tickers' prices or the ticker's volumes, so only
:meth:`GlobalLSTM.predict_panel` and :meth:`GlobalLSTM.forecast_panel` serve them; the
per-ticker calls the pipeline makes refuse such a model. Measured in ``docs/model.md``.

:meth:`GlobalLSTM.refit` continues training on the windows between the old and a later cut
(the pipeline's serving model and its daily update). A ticker the network was not trained
on (added to the watchlist after the fit) is standardised with its prices before the
model's cut and gets the median gain: no retrain is needed.

The module is pure ML (NumPy, pandas, Keras); the pipeline decides when to fit and serve.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lstm_model.base import read_meta, write_meta
from lstm_model.baselines import infer_season_length
from lstm_model.config import ConfigError, ModelConfig
from lstm_model.data import MIN_TRAIN_WINDOWS, InsufficientDataError, check_prices
from lstm_model.forecaster import fit_gain

# Standardised returns are clipped as global_ar clips them (inputs and training targets):
# one crash day of one penny stock must not set the network's weights for every ticker.
from lstm_model.global_ar import CLIP
from lstm_model.global_models import cut_histories, trained_through
from lstm_model.horizons import check_horizon

__all__ = [
    "GLOBAL_LSTM_KIND",
    "INPUTS",
    "GlobalLSTM",
    "GlobalLSTMConfig",
    "TickerScale",
]

GLOBAL_LSTM_KIND = "global_lstm"
INPUTS: tuple[str, ...] = ("market", "volume", "weekday")
"""Optional network inputs beside the ticker's own standardised returns."""

MODEL_FILE = "model.keras"
FORMAT_VERSION = 1
MIN_GAIN_DAYS = 20
"""Fewest validation days a ticker needs for its own shrinkage gain."""
FINE_TUNE_EPOCHS = 2
"""Epochs of a :meth:`GlobalLSTM.refit` over the windows added since the model's cut."""
FINE_TUNE_LR_SHARE = 0.2
"""A refit's learning rate as a share of the fit's: it nudges, it does not relearn."""


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class GlobalLSTMConfig:
    """Hyperparameters of the global network.

    Attributes:
        look_back: Days of returns in each input window.
        units: LSTM units.
        dropout: Dropout rate after the LSTM.
        batch_size: Training batch size (the pool is large: big batches keep an epoch cheap).
        epochs: Maximum training epochs.
        learning_rate: Adam learning rate.
        early_stopping_patience: Epochs without validation improvement before stopping.
        validation_fraction: Share of the pooled target dates before the cut (the last
            ones) held back for early stopping and the per-ticker gains.
        max_train_days: Use at most this many of each ticker's most recent prices before the
            cut (``None``: all).
        windows_per_epoch: The training budget: an epoch (of a fit or a refit) trains on at
            most this many windows, rounded down to whole batches. A pool no larger than it
            is trained on whole every epoch, shuffled (what the model always did); a larger
            pool (a large watchlist) is walked through in seeded shuffled passes, the next
            ``windows_per_epoch`` windows each epoch, so an epoch costs the same at 100 or
            1000 tickers (``None``: no budget, every window every epoch).
        shrinkage: Fit the per-ticker gain (else every gain is 1).
        inputs: Optional inputs, a subset of :data:`INPUTS`.
        seed: Seed for the weights, dropout and shuffling.
    """

    # Chosen on a tuning split that ends before the benchmark's test period (docs/model.md,
    # "The global LSTM"): the lowest validation loss of five candidates.
    look_back: int = 10
    units: int = 16
    dropout: float = 0.0
    batch_size: int = 512
    epochs: int = 20
    learning_rate: float = 0.0003
    early_stopping_patience: int = 3
    validation_fraction: float = 0.2
    max_train_days: int | None = 1000
    # 128 batches of 512: more than the pool of 60 tickers of 1000 days (about 48k training
    # windows), which are trained on whole as before; 500 tickers' 400k are sampled.
    windows_per_epoch: int | None = 65_536
    shrinkage: bool = True
    inputs: tuple[str, ...] = ()
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("look_back", "units", "batch_size", "epochs", "early_stopping_patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"global_lstm config field {name!r}: expected an integer >= 1, got {value!r}"
                )
        if self.windows_per_epoch is not None and (
            not isinstance(self.windows_per_epoch, int)
            or isinstance(self.windows_per_epoch, bool)
            or self.windows_per_epoch < self.batch_size
        ):
            raise ConfigError(
                "global_lstm config field 'windows_per_epoch': expected None or an integer "
                f">= batch_size ({self.batch_size}), got {self.windows_per_epoch!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"global_lstm config field 'dropout': expected [0, 1), got {self.dropout!r}"
            )
        if not 0.0 < self.validation_fraction < 0.5:
            raise ConfigError(
                "global_lstm config field 'validation_fraction': expected (0, 0.5), "
                f"got {self.validation_fraction!r}"
            )
        if not self.learning_rate > 0:
            raise ConfigError(
                "global_lstm config field 'learning_rate': expected > 0, "
                f"got {self.learning_rate!r}"
            )
        unknown = [name for name in self.inputs if name not in INPUTS]
        if unknown or len(set(self.inputs)) != len(self.inputs):
            raise ConfigError(
                f"global_lstm config field 'inputs': {list(self.inputs)!r}; each must be one of "
                f"{', '.join(INPUTS)}, at most once"
            )
        object.__setattr__(self, "inputs", tuple(sorted(self.inputs, key=INPUTS.index)))

    @classmethod
    def like(cls, config: ModelConfig, **overrides: Any) -> GlobalLSTMConfig:
        """The global network for a run with a per-ticker configuration: its history cap,
        validation share, shrinkage and seed; window, units and epochs no larger than it uses
        (so the tiny ``fast`` preset gives a tiny global network); the rest the global
        defaults."""
        defaults = cls()
        base = cls(
            look_back=min(defaults.look_back, config.look_back),
            units=min(defaults.units, config.units),
            epochs=min(defaults.epochs, config.epochs),
            max_train_days=config.max_train_days,
            validation_fraction=config.validation_fraction,
            shrinkage=config.shrinkage,
            seed=config.seed,
        )
        return dataclasses.replace(base, **overrides)

    @property
    def n_features(self) -> int:
        return (
            1
            + ("market" in self.inputs)
            + ("volume" in self.inputs)
            + 2 * ("weekday" in self.inputs)
        )

    @property
    def history(self) -> int:
        """Prices needed before a predicted day (``look_back`` returns need one more price)."""
        return self.look_back + 1

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["inputs"] = list(self.inputs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GlobalLSTMConfig:
        data = dict(data)
        data["inputs"] = tuple(data.get("inputs", ()))
        return cls(**data)


@dataclass(frozen=True)
class TickerScale:
    """One ticker's standardisation and shrinkage gain."""

    mean: float  # of its training daily log returns
    std: float
    gain: float
    volume_mean: float = 0.0  # of its training log volume changes
    volume_std: float = 1.0

    @classmethod
    def of(cls, prices: pd.Series, volume: pd.Series | None, gain: float) -> TickerScale:
        """Fit on ``prices`` (and ``volume``): the ticker's training rows only."""
        returns = np.diff(np.log(prices.to_numpy(dtype="float64")))
        std = float(returns.std()) if len(returns) > 1 else 0.0
        v_mean, v_std = 0.0, 1.0
        if volume is not None:
            changes = _log_volume_change(volume.reindex(prices.index))
            changes = changes[np.isfinite(changes)]
            if len(changes) > 1:
                v_mean, v_std = float(changes.mean()), float(changes.std()) or 1.0
        return cls(
            mean=float(returns.mean()) if len(returns) else 0.0,
            std=std if std > 1e-12 else 1.0,
            gain=gain,
            volume_mean=v_mean,
            volume_std=v_std if v_std > 1e-12 else 1.0,
        )


def _log_volume_change(volume: pd.Series) -> np.ndarray:
    """``log(1 + v_t) - log(1 + v_{t-1})`` per day (the first day has none: ``len - 1``)."""
    return np.diff(np.log1p(np.maximum(volume.to_numpy(dtype="float64"), 0.0)))


@dataclass(frozen=True)
class _Panel:
    """Per-ticker feature rows (one per return day) of a set of histories.

    ``features[t]`` has one row per return day of ticker ``t`` (its dates are
    ``dates[t]``, the day each return ends), ``returns[t]`` the standardised returns.
    """

    features: dict[str, np.ndarray]  # (n_returns, n_features) float32
    returns: dict[str, np.ndarray]  # (n_returns,) standardised
    dates: dict[str, pd.DatetimeIndex]  # the date of each return


def _standardised(prices: pd.Series, scale: TickerScale) -> pd.Series:
    log_prices = np.log(prices.to_numpy(dtype="float64"))
    z = np.clip((np.diff(log_prices) - scale.mean) / scale.std, -CLIP, CLIP)
    return pd.Series(z, index=prices.index[1:])


def _panel(
    prices: Mapping[str, pd.Series],
    volumes: Mapping[str, pd.Series] | None,
    scales: Mapping[str, TickerScale],
    config: GlobalLSTMConfig,
) -> _Panel:
    """Feature rows of every ticker in ``prices`` (each standardised by its ``scales``)."""
    z = {ticker: _standardised(series, scales[ticker]) for ticker, series in prices.items()}
    market = None
    if "market" in config.inputs:
        # The cross-sectional mean on each date, over the tickers that traded that day.
        market = pd.DataFrame(z).mean(axis=1, skipna=True)
    features: dict[str, np.ndarray] = {}
    for ticker, series in z.items():
        columns = [series.to_numpy()]
        if market is not None:
            columns.append(market.reindex(series.index).to_numpy())
        if "volume" in config.inputs:
            columns.append(_volume_column(ticker, prices[ticker], volumes, scales[ticker]))
        if "weekday" in config.inputs:
            angle = 2 * np.pi * series.index.day_of_week.to_numpy() / 7
            columns.extend([np.sin(angle), np.cos(angle)])
        stacked = np.nan_to_num(np.column_stack(columns), nan=0.0, posinf=0.0, neginf=0.0)
        features[ticker] = stacked.astype("float32")
    return _Panel(
        features=features,
        returns={ticker: series.to_numpy() for ticker, series in z.items()},
        dates={ticker: pd.DatetimeIndex(series.index) for ticker, series in z.items()},
    )


def _volume_column(
    ticker: str,
    prices: pd.Series,
    volumes: Mapping[str, pd.Series] | None,
    scale: TickerScale,
) -> np.ndarray:
    if volumes is None or ticker not in volumes:
        raise ValueError(f"global_lstm uses the 'volume' input: no volume given for {ticker}")
    volume = volumes[ticker].reindex(prices.index)
    return (_log_volume_change(volume) - scale.volume_mean) / scale.volume_std


def _windows(features: np.ndarray, look_back: int) -> np.ndarray:
    """Every ``look_back``-row window of ``features``: ``(n - look_back + 1, look_back, F)``."""
    view = np.lib.stride_tricks.sliding_window_view(features, look_back, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def _next_dates(last: np.ndarray, daily: np.ndarray) -> np.ndarray:
    """The date after each of ``last`` a fed-back forecast is given: the next day where
    ``daily`` (a ticker that trades every day), else the next weekday; one column."""
    index = pd.DatetimeIndex(last)
    following = np.where(daily, index + pd.offsets.Day(1), index + pd.offsets.BDay(1))
    return following.astype(last.dtype)[:, np.newaxis]


def _before(prices: pd.Series, cut: pd.Timestamp, cap: int | None) -> pd.Series:
    """A ticker's prices dated before ``cut``, the most recent ``cap`` of them."""
    kept = prices.loc[prices.index < cut]
    if cap is not None and len(kept) > cap:
        kept = kept.iloc[-cap:]
    return kept


@dataclass(frozen=True)
class _TrainingSet:
    inputs: np.ndarray
    targets: np.ndarray
    target_dates: np.ndarray  # datetime64 of each target
    tickers: np.ndarray  # index into ``names`` of each window
    names: list[str]

    def validation_start(self, fraction: float) -> pd.Timestamp:
        """The first of the last ``fraction`` of the pooled target dates (one date for all)."""
        unique = np.unique(self.target_dates)
        n_val = max(1, round(len(unique) * fraction))
        return pd.Timestamp(unique[len(unique) - n_val])


def _training_set(
    train: Mapping[str, pd.Series],
    volumes: Mapping[str, pd.Series] | None,
    scales: Mapping[str, TickerScale],
    config: GlobalLSTMConfig,
    since: pd.Timestamp | None = None,
) -> _TrainingSet:
    """Every window of every ticker in ``train`` (targets dated ``>= since`` only, if given)."""
    panel = _panel(train, volumes, scales, config)
    inputs, targets, dates, owners = [], [], [], []
    names = list(train)
    for position, ticker in enumerate(names):
        rows = panel.features[ticker]
        if len(rows) <= config.look_back:
            continue
        # Window k covers return rows k .. k + L - 1; its target is return row k + L.
        target_rows = np.arange(config.look_back, len(rows))
        keep = np.ones(len(target_rows), dtype=bool)
        if since is not None:
            keep = panel.dates[ticker][target_rows] >= since
        inputs.append(_windows(rows, config.look_back)[:-1][keep])
        targets.append(panel.returns[ticker][target_rows][keep].astype("float32"))
        dates.append(panel.dates[ticker][target_rows][keep].to_numpy())
        owners.append(np.full(int(keep.sum()), position))
    if not inputs:
        inputs = [np.empty((0, config.look_back, config.n_features), dtype="float32")]
        targets, dates, owners = [np.empty(0, "float32")], [np.empty(0, "M8[ns]")], [np.empty(0)]
    return _TrainingSet(
        inputs=np.concatenate(inputs),
        targets=np.concatenate(targets),
        target_dates=np.concatenate(dates),
        tickers=np.concatenate(owners).astype(int),
        names=names,
    )


def _as_config(config: ModelConfig | GlobalLSTMConfig | None, **overrides: Any) -> GlobalLSTMConfig:
    if isinstance(config, GlobalLSTMConfig):
        return dataclasses.replace(config, **overrides) if overrides else config
    return GlobalLSTMConfig.like(config or ModelConfig(), **overrides)


def _trainable(
    histories: Mapping[str, pd.Series], cut: pd.Timestamp, config: GlobalLSTMConfig
) -> tuple[dict[str, pd.Series], list[str]]:
    """Each ticker's prices before ``cut`` (capped), for tickers with enough of them; and the
    tickers left out."""
    need = config.history + MIN_TRAIN_WINDOWS
    train: dict[str, pd.Series] = {}
    skipped: list[str] = []
    before = cut_histories(histories, cut)
    for ticker in histories:
        kept = _before(before.get(ticker, histories[ticker].iloc[:0]), cut, config.max_train_days)
        if len(kept) >= need:
            train[ticker] = kept
        else:
            skipped.append(ticker)
    return train, skipped


class GlobalLSTM:
    """The fitted global network with every training ticker's scale and gain.

    A :class:`~lstm_model.global_models.GlobalModel`: :meth:`fit` on many histories cut by
    date, :meth:`refit` to continue on later days, :meth:`predict_one_step` and
    :meth:`forecast_path` for one ticker from its own prices. :meth:`predict_panel` and
    :meth:`forecast_panel` forecast many tickers at once; they are the only way to use the
    ``market`` input (the mean over the tickers given) and the ``volume`` input.
    """

    kind: ClassVar[str] = GLOBAL_LSTM_KIND

    def __init__(
        self,
        config: GlobalLSTMConfig,
        network: Any,
        scales: Mapping[str, TickerScale],
        meta: dict[str, Any],
        *,
        weights: list[np.ndarray] | None = None,
    ) -> None:
        """``network`` is the trained Keras network; or None with its ``weights`` (a loaded
        model), and the network is built from them only when Keras is needed (to save it,
        or when :meth:`refit` trains from them): forecasting runs on the weights in NumPy."""
        if network is None and weights is None:
            raise ValueError("GlobalLSTM needs its network or its weights")
        self.config = config
        self._network = network
        self._weights = weights
        self.scales = dict(scales)
        self.meta = meta

    @property
    def weights(self) -> list[np.ndarray]:
        """The network's weights (``get_weights()`` order): what every forecast runs on."""
        if self._weights is None:
            self._weights = self._network.get_weights()
        return self._weights

    @property
    def network(self) -> Any:
        """The Keras network (built from :attr:`weights` on first use for a loaded model)."""
        if self._network is None:
            network = _build(self.config)
            network.set_weights(self.weights)
            self._network = network
        return self._network

    def __repr__(self) -> str:
        return (
            f"GlobalLSTM(tickers={len(self.scales)}, inputs={list(self.config.inputs)}, "
            f"cut={self.meta.get('cut')!r})"
        )

    @property
    def default_gain(self) -> float:
        """The gain of a ticker the network was not trained on: the median trained gain."""
        return float(self.meta.get("median_gain", 1.0))

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        histories: Mapping[str, pd.Series],
        cut: date | pd.Timestamp,
        config: ModelConfig | GlobalLSTMConfig | None = None,
        *,
        volumes: Mapping[str, pd.Series] | None = None,
        **overrides: Any,
    ) -> GlobalLSTM:
        """Train one network on every ticker's windows whose target is dated before ``cut``.

        Args:
            histories: Ticker -> prices (any calendar). Prices on or after ``cut`` are never
                read; a ticker with too few prices before it is left out of training.
            cut: The first date not trained on (the hold-out start or the day after the run
                date), the same for every ticker.
            config: The global network's configuration, or a per-ticker
                :class:`~lstm_model.config.ModelConfig` to size it like
                (:meth:`GlobalLSTMConfig.like`).
            volumes: Ticker -> volume, needed when the ``volume`` input is on.
            **overrides: :class:`GlobalLSTMConfig` fields to change (``inputs=("market",)``).

        Raises:
            InsufficientDataError: No ticker has enough history before ``cut``.
        """
        from lstm_model.model import seed_everything

        started = time.perf_counter()
        config = _as_config(config, **overrides)
        cut = pd.Timestamp(cut)
        train, skipped = _trainable(histories, cut, config)
        if not train:
            raise InsufficientDataError(
                f"global_lstm: no ticker has {config.history + MIN_TRAIN_WINDOWS} prices "
                f"before {_iso(cut)} ({len(histories)} given)"
            )
        scales = {t: TickerScale.of(p, _volume_of(volumes, t), 1.0) for t, p in train.items()}
        data = _training_set(train, volumes, scales, config)
        val_start = data.validation_start(config.validation_fraction)
        is_val = data.target_dates >= np.datetime64(val_start)
        seed_everything(config.seed)
        network = _build(config)
        history = _train(network, data, ~is_val, config, epochs=config.epochs)
        gains = _gains(network, data, is_val, scales) if config.shrinkage else {}
        median_gain = float(np.median(list(gains.values()))) if gains else 1.0
        scales = {
            t: dataclasses.replace(s, gain=gains.get(t, median_gain)) for t, s in scales.items()
        }
        val_loss = history.get("val_loss") or []
        meta = {
            "kind": GLOBAL_LSTM_KIND,
            "format": FORMAT_VERSION,
            "config": config.to_dict(),
            "cut": _iso(cut),
            "trained_through": trained_through(train),
            "val_start": _iso(val_start),
            "tickers": sorted(train),
            "skipped": sorted(skipped),
            "n_windows": int((~is_val).sum()),
            "n_val": int(is_val.sum()),
            "epochs_run": len(history.get("loss", [])),
            "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else None,
            "best_val_loss": float(min(val_loss)) if val_loss else None,
            "median_gain": median_gain,
            "fit_seconds": round(time.perf_counter() - started, 3),
            "fine_tunes": [],
        }
        return cls(config, network, scales, meta)

    def refit(
        self,
        histories: Mapping[str, pd.Series],
        cut: date | pd.Timestamp,
        config: ModelConfig | GlobalLSTMConfig | None = None,
        *,
        volumes: Mapping[str, pd.Series] | None = None,
    ) -> GlobalLSTM:
        """Continue training on the windows whose target is dated from this model's cut up to
        (not including) the new ``cut``: :data:`FINE_TUNE_EPOCHS` epochs at a
        :data:`FINE_TUNE_LR_SHARE` of the learning rate, no validation slice.

        Trained tickers keep their scales and gains (as a per-ticker refit keeps its gain);
        a ticker new to the model gets a scale fit on its prices before ``cut`` and the median
        gain. ``config`` is ignored: the model keeps the configuration it was fit with.
        Returns a new model; this one is unchanged.
        """
        from lstm_model.model import compile_model, seed_everything

        started = time.perf_counter()
        cut, since = pd.Timestamp(cut), pd.Timestamp(self.meta["cut"])
        train, _ = _trainable(histories, cut, self.config)
        scales = dict(self.scales)
        for ticker, prices in train.items():
            if ticker not in scales:
                scales[ticker] = TickerScale.of(
                    prices, _volume_of(volumes, ticker), self.default_gain
                )
        data = _training_set(train, volumes, scales, self.config, since=since)
        seed_everything(self.config.seed)
        # A new network of the same configuration with this one's weights (what cloning it
        # gave, without building a Keras network for a loaded model first).
        network = _build(self.config)
        network.set_weights(self.weights)
        compile_model(network, self.config.learning_rate * FINE_TUNE_LR_SHARE)
        # A daily refit sees a batch or two (one window per ticker and day): tracing the
        # training graph would cost more than the steps themselves, so those run eagerly.
        network.run_eagerly = len(data.targets) <= 4 * self.config.batch_size
        loss = None
        if len(data.targets):
            history = _train(
                network,
                data,
                np.ones(len(data.targets), bool),
                self.config,
                epochs=FINE_TUNE_EPOCHS,
            )
            loss = float(history["loss"][-1])
        meta = copy.deepcopy(self.meta)
        meta["fine_tunes"].append(
            {
                "from": _iso(since),
                "cut": _iso(cut),
                "n_windows": len(data.targets),
                "epochs": FINE_TUNE_EPOCHS if len(data.targets) else 0,
                "final_loss": loss,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        meta["cut"] = _iso(max(cut, since))
        if train:
            meta["trained_through"] = max(meta["trained_through"], trained_through(train))
        meta["tickers"] = sorted(set(meta["tickers"]) | set(train))
        return type(self)(self.config, network, scales, meta)

    # --------------------------------------------------------------- forecasting
    def scale_for(self, ticker: str, prices: pd.Series, start: pd.Timestamp) -> TickerScale:
        """``ticker``'s trained scale, or for an unseen ticker one fit on its prices before
        the model's cut (its most recent ``max_train_days``), or before ``start`` if that is
        earlier, with the median gain. Fixing it at the cut makes every forecast of the
        ticker from the cut on use one scale (a ticker listed after the cut, with fewer
        than 3 prices before it, is scaled on its prices before ``start``)."""
        if ticker in self.scales:
            return self.scales[ticker]
        limit = min(pd.Timestamp(self.meta["cut"]), pd.Timestamp(start))
        before = _before(prices, limit, self.config.max_train_days)
        if len(before) < 3:
            before = _before(prices, pd.Timestamp(start), self.config.max_train_days)
        if len(before) < 3:
            raise InsufficientDataError(
                f"global_lstm: {ticker} has {len(before)} prices before {_iso(start)}; "
                "an unseen ticker needs at least 3 to be standardised"
            )
        return TickerScale.of(before, None, self.default_gain)

    def _check_own_prices_suffice(self) -> None:
        needs_others = [name for name in self.config.inputs if name in ("market", "volume")]
        if needs_others:
            raise ValueError(
                f"global_lstm with the {' and '.join(needs_others)} input(s) forecasts from "
                "many tickers' prices and volumes at once: use predict_panel / forecast_panel"
            )

    def predict_one_step(self, ticker: str, prices: pd.Series, start: pd.Timestamp) -> pd.Series:
        """One-step-ahead predictions for every date ``>= start`` in ``ticker``'s prices, each
        from the ``look_back`` log returns before it.

        Raises:
            InsufficientDataError: No date ``>= start``, or fewer than ``look_back + 1`` prices
                before it.
            ValueError: The model uses the market or volume input (see :meth:`predict_panel`).
        """
        self._check_own_prices_suffice()
        check_prices(prices, what=f"{ticker} prices")
        start = pd.Timestamp(start)
        first = int(prices.index.searchsorted(start, side="left"))
        if first >= len(prices):
            raise InsufficientDataError(
                f"{ticker}: no prices on or after {_iso(start)} (prices end "
                f"{_iso(prices.index[-1])})"
            )
        if first < self.config.history:
            raise InsufficientDataError(
                f"global_lstm: {ticker} needs {self.config.history} prices before "
                f"{_iso(prices.index[first])}, got {first}"
            )
        return self.predict_panel({ticker: prices}, start)[ticker]

    def forecast_path(self, ticker: str, prices: pd.Series, horizon: int) -> np.ndarray:
        """Forecasts for the next ``horizon`` trading days after ``prices`` ends: each step's
        forecast is fed back as the next day's price (dated the next weekday, or the next
        day for a ticker that trades every day)."""
        self._check_own_prices_suffice()
        check_horizon(horizon)
        check_prices(prices, what=f"{ticker} prices")
        if len(prices) < self.config.history:
            raise InsufficientDataError(
                f"global_lstm: {ticker} needs {self.config.history} prices to forecast, "
                f"got {len(prices)}"
            )
        scale = self.scale_for(ticker, prices, prices.index[-1] + pd.Timedelta(days=1))
        window = prices.iloc[-self.config.history :]
        daily = infer_season_length(prices) == 7
        return self._roll_paths(
            window.to_numpy(dtype="float64")[np.newaxis],
            window.index.to_numpy()[np.newaxis],
            [scale],
            np.array([daily]),
            horizon,
        )[0]

    def forecast_paths(
        self, ticker: str, prices: pd.Series, origins: np.ndarray, horizon: int
    ) -> np.ndarray:
        """:meth:`forecast_path` from each origin position of ``prices`` (from the prices up
        to and including it), every origin at once per step: one network call per step
        instead of one per origin and step (a backtest has hundreds of origins).

        Returns:
            ``(len(origins), horizon)``; a row of NaN where :meth:`forecast_path` would raise
            :class:`InsufficientDataError` (fewer than ``history`` prices up to the origin,
            or an unseen ticker too short to be standardised).
        """
        self._check_own_prices_suffice()
        check_horizon(horizon)
        check_prices(prices, what=f"{ticker} prices")
        origins = np.asarray(origins, dtype="int64")
        paths = np.full((len(origins), horizon), np.nan)
        rows, scales = self._origin_scales(ticker, prices, origins)
        if not rows:
            return paths
        ends = origins[rows]
        starts = ends + 1 - self.config.history
        windows = np.lib.stride_tricks.sliding_window_view(
            prices.to_numpy(dtype="float64"), self.config.history
        )[starts]
        dates = np.lib.stride_tricks.sliding_window_view(
            prices.index.to_numpy(), self.config.history
        )[starts]
        # infer_season_length of the prices up to each origin: daily once a weekend was seen.
        weekend_seen = np.maximum.accumulate(prices.index.day_of_week.to_numpy() >= 5)
        paths[rows] = self._roll_paths(windows, dates, scales, weekend_seen[ends], horizon)
        return paths

    def _origin_scales(
        self, ticker: str, prices: pd.Series, origins: np.ndarray
    ) -> tuple[list[int], list[TickerScale]]:
        """The rows of ``origins`` that can be forecast from and the scale of each
        (:meth:`scale_for` of the prices up to it)."""
        usable = np.flatnonzero(origins + 1 >= self.config.history)
        if ticker in self.scales:  # one trained scale for every origin: no per-origin slices
            return usable.tolist(), [self.scales[ticker]] * usable.size
        rows, scales = [], []
        for row in usable:
            origin = int(origins[row])
            try:
                scale = self.scale_for(
                    ticker, prices.iloc[: origin + 1], prices.index[origin] + pd.Timedelta(days=1)
                )
            except InsufficientDataError:
                continue
            rows.append(int(row))
            scales.append(scale)
        return rows, scales

    def _roll_paths(
        self,
        windows: np.ndarray,
        dates: np.ndarray,
        scales: list[TickerScale],
        daily: np.ndarray,
        horizon: int,
    ) -> np.ndarray:
        """The next ``horizon`` forecasts after each row of ``windows`` (``history`` prices
        each, dated by ``dates``), each fed back as the next day's price (dated the next day
        where ``daily``, else the next weekday): one network call per step for every row."""
        mean = np.array([s.mean for s in scales])
        std = np.array([s.std for s in scales])
        gain = np.array([s.gain for s in scales])
        windows = np.array(windows, dtype="float64")
        dates = pd.DatetimeIndex(np.asarray(dates).reshape(-1)).to_numpy().reshape(windows.shape)
        paths = np.empty((len(windows), horizon))
        for step in range(horizon):
            z = _outputs(self.weights, self._window_features(windows, dates, mean, std))
            forecast = windows[:, -1] * np.exp(gain * (z * std + mean))
            paths[:, step] = forecast
            windows = np.concatenate([windows[:, 1:], forecast[:, np.newaxis]], axis=1)
            dates = np.concatenate([dates[:, 1:], _next_dates(dates[:, -1], daily)], axis=1)
        return paths

    def _window_features(
        self, windows: np.ndarray, dates: np.ndarray, mean: np.ndarray, std: np.ndarray
    ) -> np.ndarray:
        """The network's input for each row of ``windows``: the ``look_back`` feature rows
        :func:`_panel` gives that row's prices (standardised by its scale), ``(n, look_back,
        n_features)``; forecasting from a row reads nothing but its own prices."""
        returns = np.diff(np.log(windows), axis=1)
        z = np.clip((returns - mean[:, np.newaxis]) / std[:, np.newaxis], -CLIP, CLIP)
        columns = [z]
        if "weekday" in self.config.inputs:
            weekday = pd.DatetimeIndex(dates[:, 1:].reshape(-1)).day_of_week.to_numpy()
            angle = (2 * np.pi * weekday / 7).reshape(z.shape)
            columns.extend([np.sin(angle), np.cos(angle)])
        stacked = np.nan_to_num(np.stack(columns, axis=-1), nan=0.0, posinf=0.0, neginf=0.0)
        return stacked.astype("float32")[:, -self.config.look_back :]

    def forecast_next(self, ticker: str, prices: pd.Series) -> float:
        """The forecast for the trading day after ``prices`` ends."""
        return float(self.forecast_path(ticker, prices, 1)[0])

    def predict_each(
        self, histories: Mapping[str, pd.Series], start: pd.Timestamp
    ) -> dict[str, pd.Series]:
        """:meth:`predict_one_step` of every ticker at once, each from its own prices only
        (one network call for all, not one per ticker); a ticker with no date ``>= start``
        or too few prices before it is left out.

        Raises:
            ValueError: The model uses the market or volume input (see :meth:`predict_panel`).
        """
        self._check_own_prices_suffice()
        return self.predict_panel(histories, pd.Timestamp(start))

    def predict_panel(
        self,
        histories: Mapping[str, pd.Series],
        start: pd.Timestamp,
        *,
        volumes: Mapping[str, pd.Series] | None = None,
    ) -> dict[str, pd.Series]:
        """Per ticker, one-step-ahead predictions for every date ``>= start`` in its prices.

        The prediction for ticker ``t`` on date ``d`` uses prices dated before ``d`` only
        (``t``'s, and for the ``market`` input the other tickers'). A ticker with fewer than
        ``look_back + 1`` prices before its first such date is left out of the result.
        """
        start = pd.Timestamp(start)
        for ticker, prices in histories.items():
            check_prices(prices, what=f"{ticker} prices")
        scales = {
            t: self.scale_for(t, p, start)
            for t, p in histories.items()
            if (p.index < start).sum() >= self.config.history
        }
        panel = _panel({t: histories[t] for t in scales}, volumes, scales, self.config)
        return self._predictions(histories, panel, scales, start)

    def forecast_panel(
        self,
        histories: Mapping[str, pd.Series],
        *,
        volumes: Mapping[str, pd.Series] | None = None,
    ) -> dict[str, float]:
        """Per ticker, the forecast for the trading day after its prices end."""
        for ticker, prices in histories.items():
            check_prices(prices, what=f"{ticker} prices")
        scales = {
            t: self.scale_for(t, p, p.index[-1] + pd.Timedelta(days=1))
            for t, p in histories.items()
            if len(p) >= self.config.history
        }
        if not scales:
            return {}
        panel = _panel({t: histories[t] for t in scales}, volumes, scales, self.config)
        names = list(scales)
        lb = self.config.look_back
        outputs = _outputs(self.weights, np.stack([panel.features[t][-lb:] for t in names]))
        result = {}
        for ticker, z in zip(names, outputs, strict=True):
            scale = scales[ticker]
            prev = float(histories[ticker].iloc[-1])
            result[ticker] = float(prev * np.exp(scale.gain * (z * scale.std + scale.mean)))
        return result

    def _predictions(
        self,
        histories: Mapping[str, pd.Series],
        panel: _Panel,
        scales: Mapping[str, TickerScale],
        start: pd.Timestamp,
    ) -> dict[str, pd.Series]:
        lb = self.config.look_back
        chunks, spans = [], []
        for ticker in scales:
            prices = histories[ticker]
            first = int(prices.index.searchsorted(start, side="left"))
            if first >= len(prices):
                continue
            # The target at price position p reads return rows p - 1 - lb .. p - 2 (the
            # returns ending at prices p - lb .. p - 1): prices dated before p only.
            rows = np.arange(first, len(prices)) - 1 - lb
            chunks.append(_windows(panel.features[ticker], lb)[rows])
            spans.append((ticker, first, len(rows)))
        if not chunks:
            return {}
        outputs = _outputs(self.weights, np.concatenate(chunks))
        result: dict[str, pd.Series] = {}
        offset = 0
        for ticker, first, n in spans:
            z = outputs[offset : offset + n]
            offset += n
            prices = histories[ticker]
            prev = prices.to_numpy(dtype="float64")[first - 1 : first - 1 + n]
            scale = scales[ticker]
            predicted = prev * np.exp(scale.gain * (z * scale.std + scale.mean))
            result[ticker] = pd.Series(
                predicted, index=prices.index[first : first + n], name="predicted"
            )
        return result

    # --------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``model.keras`` and ``meta.json`` (config, scales, gains, training facts)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.network.save(directory / MODEL_FILE)
        meta = dict(self.meta)
        meta["scales"] = {t: dataclasses.asdict(s) for t, s in sorted(self.scales.items())}
        write_meta(directory, meta)

    @classmethod
    def load(cls, directory: Path) -> GlobalLSTM:
        """Load what :meth:`save` wrote: the network's weights are read out of
        ``model.keras`` (:func:`lstm_model.network_file.read_network`, which deserialises
        nothing and refuses any other network), no Keras network is built (about 170 ms a
        load, several loads a day: the pooled step and every chunk).

        Raises:
            FileNotFoundError: ``meta.json`` or ``model.keras`` is missing.
            ValueError: The saved kind is not ``global_lstm``, or ``model.keras`` is not
                the network its configuration describes.
        """
        from lstm_model.network_file import read_network

        directory = Path(directory)
        meta = read_meta(directory, GLOBAL_LSTM_KIND)
        if not (directory / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{directory}: missing {MODEL_FILE}")
        scales = {t: TickerScale(**s) for t, s in meta.pop("scales").items()}
        config = GlobalLSTMConfig.from_dict(meta["config"])
        try:
            weights = read_network(directory / MODEL_FILE, config, n_features=config.n_features)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{directory / MODEL_FILE}: {type(exc).__name__}: {exc}") from exc
        return cls(config, None, scales, meta, weights=weights)


def _volume_of(volumes: Mapping[str, pd.Series] | None, ticker: str) -> pd.Series | None:
    return None if volumes is None else volumes.get(ticker)


# ---------------------------------------------------------------------- the network
def _build(config: GlobalLSTMConfig) -> Any:
    """LSTM(units) -> Dropout -> Dense(1) over ``look_back`` steps of ``n_features``."""
    from lstm_model.model import build_network

    return build_network(
        look_back=config.look_back, n_features=config.n_features, units=config.units,
        dropout=config.dropout, seed=config.seed, learning_rate=config.learning_rate,
        name="closecast_global_lstm",
    )  # fmt: skip


def _train(
    network: Any, data: _TrainingSet, fit_rows: np.ndarray, config: GlobalLSTMConfig, *, epochs: int
) -> dict[str, list[float]]:
    import keras

    from lstm_model.interrupt import raise_if_stopped, stop_callback
    from lstm_model.progress import keras_progress

    # One network over every ticker: minutes at hundreds of tickers, so say how it goes.
    what = f"global_lstm on {len(data.names)} tickers"
    callbacks: list[Any] = [stop_callback(), keras_progress(what, epochs)]
    validation = None
    if not fit_rows.all():
        validation = (data.inputs[~fit_rows], data.targets[~fit_rows])
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    inputs, targets = data.inputs[fit_rows], data.targets[fit_rows]
    budget = config.windows_per_epoch
    if budget is None or len(targets) <= budget:
        history = network.fit(
            inputs,
            targets,
            epochs=epochs,
            batch_size=config.batch_size,
            validation_data=validation,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
    else:
        stream = _window_stream(inputs, targets, config.batch_size, config.seed)
        history = network.fit(
            stream,
            steps_per_epoch=budget // config.batch_size,
            epochs=epochs,
            validation_data=validation,
            validation_batch_size=config.batch_size,
            shuffle=False,  # the stream is shuffled (Keras cannot shuffle an endless one)
            callbacks=callbacks,
            verbose=0,
        )
    raise_if_stopped()
    return history.history


def pass_order(n_windows: int, batch_size: int, seed: int, number: int) -> np.ndarray:
    """The windows of pass ``number`` over a pool of ``n_windows``: a seeded permutation,
    cut to whole batches (the few left over are in other passes' batches)."""
    order = np.random.default_rng([seed, number]).permutation(n_windows)
    return order[: n_windows - n_windows % batch_size]


def _window_stream(inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int) -> Any:
    """An endless stream of training batches over the pool: :func:`pass_order` pass after
    pass. Keras continues an endless stream where the last epoch stopped, so epochs of
    ``windows_per_epoch`` windows walk through the whole pool before any window repeats.
    Batch ``k`` depends on ``k`` alone: the same fit trains on the same batches."""
    import keras

    per_pass = len(targets) // batch_size

    class WindowStream(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self._pass: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

        @property
        def num_batches(self) -> None:
            return None  # endless

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            number, position = divmod(index, per_pass)
            cached = self._pass  # one read: Keras may call from its prefetch thread too
            if cached[0] != number:
                cached = (number, pass_order(len(targets), batch_size, seed, number))
                self._pass = cached
            rows = cached[1][position * batch_size : (position + 1) * batch_size]
            return inputs[rows], targets[rows]

    return WindowStream()


def _gains(
    network: Any, data: _TrainingSet, val: np.ndarray, scales: Mapping[str, TickerScale]
) -> dict[str, float]:
    """Each ticker's least-squares gain on its own validation days (>= MIN_GAIN_DAYS), fit
    on log moves (``z * std + mean``) as the per-ticker LSTM fits its gain."""
    outputs = _outputs(network.get_weights(), data.inputs[val])
    owners = data.tickers[val]
    targets = data.targets[val].astype("float64")
    gains = {}
    for position, ticker in enumerate(data.names):
        mine = owners == position
        if mine.sum() < MIN_GAIN_DAYS:
            continue
        scale = scales[ticker]
        actual = targets[mine] * scale.std + scale.mean
        predicted = outputs[mine] * scale.std + scale.mean
        gains[ticker] = fit_gain(actual, predicted)
    return gains


def _outputs(weights: list[np.ndarray], inputs: np.ndarray) -> np.ndarray:
    from lstm_model.inference import network_outputs

    return network_outputs(weights, inputs)
