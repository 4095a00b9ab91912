"""Fit, refit, fine-tune and apply many tickers' models at once.

Training one small network per ticker is bounded by per-model overhead, not arithmetic:
building and tracing a Keras model and running ``fit``'s machinery cost more than the few
milliseconds of LSTM arithmetic in an epoch (``docs/scaling.md`` has the measurements). Here
the tickers that share a configuration and a training-set shape (the same number of training
and validation windows: every ticker with at least ``max_train_days`` of history) form a
*group* whose networks are stacked and stepped together by one traced TensorFlow graph
(:mod:`lstm_model.grouped`), in chunks of ``group_size`` to bound memory.

Per-ticker models stay per-ticker models. Each ticker gets its own representation (scaler)
fit on its own training prices, its own validation slice (the end of its own training
period), its own early stopping (a ticker that stops leaves the group with its best weights
while the others go on), its own shrinkage gain and its own meta; the results are ordinary
:class:`~lstm_model.forecaster.Forecaster` objects that :meth:`Forecaster.save` and
:meth:`Forecaster.load` handle as usual. Each network follows the trajectory Keras ``fit``
gives it in the per-ticker path (same initial weights, window order, dropout masks and Adam
steps), up to float rounding.

Bad input is reported per series, naming it (its ``name``, else its position): with
``return_exceptions=True`` a failing series gets its exception in its place in the result
and the others are trained; otherwise the first failure is raised before anything trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices
from lstm_model.forecaster import (
    Forecaster,
    TrainingData,
    fine_tuned_meta,
    fit_meta,
    prepare_training,
    refit_config,
)
from lstm_model.inference import network_outputs
from lstm_model.representation import representation_from_json

__all__ = [
    "DEFAULT_GROUP_SIZE",
    "fine_tune_many",
    "fit_many",
    "forecast_next_many",
    "predict_one_step_many",
    "refit_many",
]

DEFAULT_GROUP_SIZE = 32
"""Networks stepped together. Speed per ticker hardly depends on it (each network runs its
own fused LSTM kernel; the group shares the graph calls), memory grows with it: a few MB of
activations per network for the default preset (``bench/bench_scale.py``)."""

T = TypeVar("T")
Result = TypeVar("Result")

_INPUT_ERRORS = (InsufficientDataError, ValueError, TypeError)


# ---------------------------------------------------------------------- public API
def fit_many(
    series: Sequence[pd.Series],
    config: ModelConfig,
    *,
    group_size: int = DEFAULT_GROUP_SIZE,
    return_exceptions: bool = False,
) -> list[Forecaster | Exception]:
    """:meth:`Forecaster.fit` for every series, trained in groups.

    Args:
        series: Each ticker's training-period prices (ascending DatetimeIndex); a series'
            ``name`` names it in errors.
        config: The configuration every ticker is trained with.
        group_size: Networks stepped together (bounds memory, see :data:`DEFAULT_GROUP_SIZE`).
        return_exceptions: Put a failing series' exception in its place instead of raising.

    Returns:
        One :class:`Forecaster` (or exception) per series, in order. Its meta is that of
        :meth:`Forecaster.fit` (with ``best_epoch``); ``train_seconds`` and ``fit_seconds``
        are its share of its group's time, and ``batch.group_size`` its group's size.

    Raises:
        InsufficientDataError, ValueError, TypeError: A bad series, named in the message
            (unless ``return_exceptions``).
    """
    items = _prepare_all(series, return_exceptions, lambda s: (prepare_training(s, config), config))
    return _fit_prepared(items, group_size)


def refit_many(
    series: Sequence[pd.Series],
    like: Sequence[Forecaster],
    *,
    group_size: int = DEFAULT_GROUP_SIZE,
    return_exceptions: bool = False,
) -> list[Forecaster | Exception]:
    """:meth:`Forecaster.refit` for every pair ``(series[i], like[i])``, trained in groups.

    Each refit trains on its whole series for ``like[i].meta["best_epoch"]`` epochs with no
    validation slice and takes ``like[i]``'s gain.

    Args:
        series: Each ticker's whole history to train on.
        like: Each ticker's backtest fit (from :func:`fit_many` or :meth:`Forecaster.fit`).
        group_size: Networks stepped together.
        return_exceptions: Put a failing series' exception in its place instead of raising.

    Returns:
        One refit :class:`Forecaster` (or exception) per series, in order.
    """
    _same_length(series, like, "like")

    def prepare(pair: tuple[pd.Series, Forecaster]) -> tuple[TrainingData, ModelConfig]:
        config = refit_config(pair[1])
        return prepare_training(pair[0], config), config

    pairs = list(zip(series, like, strict=True))
    items = _prepare_all(pairs, return_exceptions, prepare, names=[s.name for s in series])
    fitted = _fit_prepared(items, group_size)
    return [
        f if isinstance(f, Exception) else f.as_refit_of(source)
        for f, source in zip(fitted, like, strict=True)
    ]


def fine_tune_many(
    forecasters: Sequence[Forecaster],
    prices: Sequence[pd.Series],
    new_from: Sequence[pd.Timestamp],
    *,
    epochs: int,
    learning_rate: float,
    group_size: int = DEFAULT_GROUP_SIZE,
    return_exceptions: bool = False,
) -> list[Forecaster | Exception]:
    """:meth:`Forecaster.fine_tune` for every ticker ``i``: continue training
    ``forecasters[i]`` on the targets of ``prices[i]`` dated ``>= new_from[i]``.

    Args:
        forecasters: The models to continue training (left untouched).
        prices: Each ticker's prices; they may start earlier than ``new_from[i]`` so that the
            first new targets have full windows.
        new_from: Each ticker's first new date.
        epochs: Epochs of fine-tuning (every ticker).
        learning_rate: Adam learning rate (every ticker).
        group_size: Networks stepped together.
        return_exceptions: Put a failing ticker's exception in its place instead of raising.

    Returns:
        One new :class:`Forecaster` (or exception) per ticker, in order; scalers and gains
        are kept, ``meta["fine_tunes"]`` gains a record.
    """
    _same_length(forecasters, prices, "prices")
    _same_length(forecasters, new_from, "new_from")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")

    def prepare(args: tuple[Forecaster, pd.Series, pd.Timestamp]) -> _FineTune:
        forecaster, series, start = args
        check_prices(series)
        inputs, positions = forecaster._inputs_from(series, pd.Timestamp(start))
        rep = forecaster.representation
        targets = rep.targets(series.to_numpy(dtype="float64"))[positions - rep.history]
        return _FineTune(forecaster, series, int(positions[0]), inputs, targets)

    triples = list(zip(forecasters, prices, new_from, strict=True))
    items = _prepare_all(triples, return_exceptions, prepare, names=[s.name for s in prices])
    results: list[Any] = list(items)
    jobs = {
        i: _Job(
            inputs=item.inputs[..., 0],
            targets=item.targets,
            initial=item.forecaster.get_weights(),
            epochs=epochs,
        )
        for i, item in enumerate(items)
        if not isinstance(item, Exception)
    }

    def key(i: int) -> Hashable:
        c = items[i].forecaster.config
        return (c.look_back, c.units, c.dropout, c.batch_size, c.seed, len(jobs[i].targets))

    for members in _groups(list(jobs), key, group_size):
        c = items[members[0]].forecaster.config
        spec = _Spec(c.batch_size, c.seed, c.dropout, learning_rate, patience=None)
        outcomes = _train_group([jobs[i] for i in members], spec)
        for i, outcome in zip(members, outcomes, strict=True):
            item = items[i]
            meta = fine_tuned_meta(
                item.forecaster.meta,
                item.prices,
                first=item.first,
                n_windows=len(item.targets),
                epochs=epochs,
                learning_rate=learning_rate,
                final_loss=outcome.history["loss"][-1],
                seconds=outcome.seconds,
            )
            results[i] = Forecaster(
                config=item.forecaster.config,
                weights=outcome.weights,
                representation=representation_from_json(item.forecaster.representation.to_json()),
                gain=item.forecaster.gain,
                meta=meta,
            )
    return results


def predict_one_step_many(
    forecasters: Sequence[Forecaster],
    prices: Sequence[pd.Series],
    starts: Sequence[pd.Timestamp],
) -> list[pd.Series]:
    """:meth:`Forecaster.predict_one_step` for every ticker (the network runs in NumPy,
    :mod:`lstm_model.inference`: nothing is gained by grouping the calls).

    The prediction for date ``d`` uses only prices dated before ``d``.

    Raises:
        InsufficientDataError, ValueError, TypeError: A bad series, named in the message.
    """
    _same_length(forecasters, prices, "prices")
    _same_length(forecasters, starts, "starts")
    triples = list(zip(forecasters, prices, starts, strict=True))
    return _prepare_all(  # type: ignore[return-value]  (no exception is returned)
        triples,
        False,
        lambda t: t[0].predict_one_step(t[1], pd.Timestamp(t[2])),
        names=[getattr(s, "name", None) for s in prices],
    )


def forecast_next_many(
    forecasters: Sequence[Forecaster], prices: Sequence[pd.Series]
) -> list[float]:
    """:meth:`Forecaster.forecast_next` for every ticker.

    Raises:
        InsufficientDataError, ValueError, TypeError: A bad series, named in the message.
    """
    _same_length(forecasters, prices, "prices")
    pairs = list(zip(forecasters, prices, strict=True))
    return _prepare_all(  # type: ignore[return-value]  (no exception is returned)
        pairs,
        False,
        lambda pair: pair[0].forecast_next(pair[1]),
        names=[getattr(s, "name", None) for s in prices],
    )


# ---------------------------------------------------------------------- preparation
@dataclass(frozen=True)
class _FineTune:
    forecaster: Forecaster
    prices: pd.Series
    first: int  # position of the first new target
    inputs: np.ndarray
    targets: np.ndarray


def _name(series: Any, position: int) -> str:
    name = getattr(series, "name", None)
    return f"series {name!r}" if name is not None else f"series #{position}"


def _same_length(a: Sequence[Any], b: Sequence[Any], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} forecasters or series but {len(b)} {what}")


def _prepare_all(
    inputs: Sequence[T],
    return_exceptions: bool,
    prepare: Callable[[T], Result],
    *,
    names: Sequence[Any] | None = None,
) -> list[Result | Exception]:
    """``prepare`` every input; a failure names its series and is raised or kept in place."""
    prepared: list[Result | Exception] = []
    for position, item in enumerate(inputs):
        try:
            prepared.append(prepare(item))
        except _INPUT_ERRORS as exc:
            label = _name(item, position) if names is None else _name_of(names[position], position)
            error = type(exc)(f"{label}: {exc}")
            if not return_exceptions:
                raise error from exc
            prepared.append(error)
    return prepared


def _name_of(name: Any, position: int) -> str:
    return f"series {name!r}" if name is not None else f"series #{position}"


def _groups(indices: list[int], key: Callable[[int], Hashable], size: int) -> list[list[int]]:
    """Indices with equal keys, in chunks of at most ``size``."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {size!r}")
    by_key: dict[Hashable, list[int]] = {}
    for i in indices:
        by_key.setdefault(key(i), []).append(i)
    return [
        members[start : start + size]
        for members in by_key.values()
        for start in range(0, len(members), size)
    ]


# ---------------------------------------------------------------------- training
@dataclass(frozen=True)
class _Spec:
    """What a group shares besides its architecture."""

    batch_size: int
    seed: int
    dropout: float
    learning_rate: float
    patience: int | None  # early stopping on the validation loss, or None


@dataclass
class _Job:
    """One network's training in a group."""

    inputs: np.ndarray  # (n, T) training windows
    targets: np.ndarray  # (n,)
    initial: list[np.ndarray]  # get_weights() to start from
    epochs: int  # most epochs to run
    val_inputs: np.ndarray | None = None  # (n_val, T)
    val_targets: np.ndarray | None = None


@dataclass
class _Outcome:
    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float  # this network's share of its group's training time
    epoch_seconds: list[float] = field(default_factory=list)  # shares, per epoch
    val_outputs: np.ndarray | None = None  # final network's outputs on the validation windows


class _EarlyStopping:
    """Keras' ``EarlyStopping(monitor="val_loss", restore_best_weights=True)`` for one network."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.wait = 0
        self.best: float | None = None
        self.best_weights: list[np.ndarray] | None = None

    def should_stop(self, epoch: int, val_loss: float, weights: Callable[[], list]) -> bool:
        if self.best_weights is None:
            self.best_weights = weights()
        self.wait += 1
        if self.best is None or val_loss < self.best:
            self.best, self.best_weights, self.wait = val_loss, weights(), 0
            return False
        return self.wait >= self.patience and epoch > 0


def _initial_weights(config: ModelConfig) -> list[np.ndarray]:
    """The weights :func:`build_model` starts every network of this configuration from."""
    from lstm_model.model import build_model

    return build_model(config).get_weights()


def _fit_prepared(
    items: list[tuple[TrainingData, ModelConfig] | Exception], group_size: int
) -> list[Any]:
    """Train every prepared ticker in groups and wrap each as a fitted Forecaster."""
    results: list[Any] = list(items)
    ok = [i for i, item in enumerate(items) if not isinstance(item, Exception)]
    initial: dict[ModelConfig, list[np.ndarray]] = {}

    def architecture(i: int) -> ModelConfig:
        return items[i][1].architecture()  # type: ignore[index]

    def key(i: int) -> Hashable:
        data = items[i][0]  # type: ignore[index]
        return (architecture(i), data.n_fit, data.n_val)

    for members in _groups(ok, key, group_size):
        started = time.perf_counter()
        base = architecture(members[0])
        if base not in initial:
            initial[base] = _initial_weights(base)
        jobs = []
        for i in members:
            data, config = items[i]  # type: ignore[misc]
            val = data.validation
            jobs.append(
                _Job(
                    inputs=data.inputs[: data.n_fit, :, 0],
                    targets=data.targets[: data.n_fit],
                    initial=initial[base],
                    epochs=config.epochs,
                    val_inputs=None if val is None else val[0][..., 0],
                    val_targets=None if val is None else val[1],
                )
            )
        patience = base.early_stopping_patience if jobs[0].val_targets is not None else None
        spec = _Spec(base.batch_size, base.seed, base.dropout, base.learning_rate, patience)
        outcomes = _train_group(jobs, spec)
        group_seconds = time.perf_counter() - started
        for i, outcome in zip(members, outcomes, strict=True):
            data, config = items[i]  # type: ignore[misc]
            results[i] = _fitted(data, config, outcome, group_seconds / len(members), members)
    return results


def _fitted(
    data: TrainingData,
    config: ModelConfig,
    outcome: _Outcome,
    fit_seconds: float,
    members: list[int],
) -> Forecaster:
    forecaster = Forecaster(
        config=config, weights=outcome.weights, representation=data.representation
    )
    val_stats = forecaster._calibrate_on_validation(data, outcome.val_outputs)
    later = outcome.epoch_seconds[1:]
    forecaster.meta = fit_meta(
        data,
        config,
        gain=forecaster.gain,
        history=outcome.history,
        train_seconds=outcome.seconds,
        fit_seconds=fit_seconds,
        epoch_timing={
            "first_epoch_seconds": round(outcome.epoch_seconds[0], 4),
            "epoch_seconds": round(sum(later) / len(later), 4) if later else None,
        },
        val_stats=val_stats,
    )
    forecaster.meta["batch"] = {"group_size": len(members)}
    return forecaster


def _train_group(jobs: list[_Job], spec: _Spec) -> list[_Outcome]:
    """Train networks with the same training-set shape together, as Keras ``fit`` would
    train each alone; a network leaves the group when it stops early or runs its epochs."""
    import tensorflow as tf

    from lstm_model import grouped
    from lstm_model.interrupt import raise_if_stopped
    from lstm_model.progress import Throttle
    from lstm_model.progress import logger as progress_logger

    throttle = Throttle()

    started = time.perf_counter()
    n = len(jobs[0].targets)
    order = grouped.keras_shuffle_order(n, spec.seed)
    batches = [order[i : i + spec.batch_size] for i in range(0, n, spec.batch_size)]
    x_all = np.stack([j.inputs for j in jobs]).astype(np.float32)
    y_all = np.stack([j.targets for j in jobs]).astype(np.float32)
    has_val = jobs[0].val_targets is not None and len(jobs[0].val_targets) > 0
    if has_val:
        vx = tf.constant(np.stack([j.val_inputs for j in jobs]).astype(np.float32))
        vy = tf.constant(np.stack([j.val_targets for j in jobs]).astype(np.float32))
    params = grouped.stack([j.initial for j in jobs])
    m = [tf.zeros_like(p) for p in params]
    v = [tf.zeros_like(p) for p in params]
    rows = list(range(len(jobs)))  # which job each row of the group tensors holds
    stoppers = [_EarlyStopping(spec.patience) for _ in jobs] if spec.patience else None
    histories: list[dict[str, list[float]]] = [{"loss": []} for _ in jobs]
    epoch_shares: list[list[float]] = [[] for _ in jobs]
    finished: dict[int, list[np.ndarray]] = {}
    step = epoch = 0
    while rows:
        raise_if_stopped("batched training")
        epoch_started = time.perf_counter()
        loss_sum = np.zeros(len(rows))
        for batch in batches:
            params, m, v, loss = grouped.train_step(
                params,
                m,
                v,
                step=step,
                x=tf.constant(x_all[:, batch]),
                y=tf.constant(y_all[:, batch]),
                dropout=spec.dropout,
                seed=spec.seed,
                learning_rate=spec.learning_rate,
            )
            loss_sum += loss * len(batch)  # Keras averages batch losses weighted by size
            step += 1
        val_loss = grouped.mse(params, vx, vy) if has_val else None
        if throttle.due():
            progress_logger.info(
                "training %d networks together: epoch %d, %d still training, mean loss %.4g, %.0fs",
                len(jobs),
                epoch + 1,
                len(rows),
                float(np.mean(loss_sum / n)),
                throttle.elapsed,
            )
        current = [p.numpy() for p in params]
        share = (time.perf_counter() - epoch_started) / len(rows)
        keep = []
        for row, job in enumerate(rows):
            histories[job]["loss"].append(float(loss_sum[row] / n))
            epoch_shares[job].append(share)
            stop = False
            if val_loss is not None:
                histories[job].setdefault("val_loss", []).append(float(val_loss[row]))
            if stoppers is not None and val_loss is not None:
                stop = stoppers[job].should_stop(
                    epoch, float(val_loss[row]), lambda r=row, w=current: grouped.unstack(w, r)
                )
            if stop or epoch + 1 >= jobs[job].epochs:
                finished[job] = (
                    stoppers[job].best_weights  # type: ignore[assignment]
                    if stoppers is not None and stoppers[job].best_weights is not None
                    else grouped.unstack(current, row)
                )
            else:
                keep.append(row)
        if keep and len(keep) < len(rows):  # drop finished networks from the group's tensors
            params, m, v = ([tf.gather(t, keep) for t in ts] for ts in (params, m, v))
            x_all, y_all = x_all[keep], y_all[keep]
            if has_val:
                vx, vy = tf.gather(vx, keep), tf.gather(vy, keep)
        rows = [rows[r] for r in keep]
        epoch += 1
    val_outputs: list[np.ndarray | None] = [None] * len(jobs)
    if has_val:
        val_outputs = [
            network_outputs(finished[j], job.val_inputs[..., np.newaxis])
            for j, job in enumerate(jobs)
        ]
    seconds = (time.perf_counter() - started) / len(jobs)
    return [
        _Outcome(finished[j], histories[j], seconds, epoch_shares[j], val_outputs[j])
        for j in range(len(jobs))
    ]
