"""Model versions and the champion pointer of each ticker, kept in storage.

A ticker's models live at ``models/<T>/vNNNN/``: ``version.zip``, one archive of whatever
files the model's ``save`` writes (any :class:`~lstm_model.base.ForecastModel`; the LSTM's
are ``model.keras``, ``scaler.json`` and ``meta.json``), stored as one object so that a
version costs one request to store and one to load and is complete exactly when it exists;
and for a retrained version ``backtest.parquet``: the hold-out predictions it was chosen by.
Versions stored before the archive hold those files side by side (``meta.json`` stored
last); they load as they are, by the files their champion pointer names.
``models/<T>/champion.json`` names the version that serves forecasts, the files it is made
of and the highest version number stored for the ticker (``latest``), so a run neither lists
the ticker's versions to number the next one nor to load the champion. The pointer is
written only after every file of the version it names is stored, so a reader never follows
it to a half-written model.

A *lineage* is a retrained version and the fine-tunes that continue it: they share the
retrain's backtest score, and the live record is kept per lineage.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from closecast.outputs import catalog
from closecast.outputs.records import PredictionRow, rows_to_table
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.concurrent import concurrently
from closecast.storage.io import read_json, read_parquet, write_json, write_parquet
from lstm_model import metrics
from lstm_model.base import META_FILE, ForecastModel
from lstm_model.registry import load_model as load_saved_model

MODEL_FILES: tuple[str, ...] = ("model.keras", "scaler.json", "meta.json")
"""The files of an LSTM version stored before the archive (and of every champion recorded
before ``files`` was)."""
VERSION_FILE = "version.zip"
"""A version's one object: every file the model's ``save`` wrote, in a zip archive."""
MAX_VERSION_BYTES = 64 * 1024 * 1024
"""The most a version archive may unpack to (a tampered one is refused, not unpacked)."""
TEMP_DIR_PREFIX = "closecast-model-"


class ChampionUnreadableError(RuntimeError):
    """``champion.json`` exists but cannot be read; the message names the key."""


@dataclass(frozen=True)
class BacktestScore:
    """A retrain procedure's honest score: fit before its hold-out tail, scored on it."""

    start: date
    end: date
    n: int
    rmse: float
    naive_rmse: float
    u2: float
    mae: float
    mape: float
    directional_accuracy: float
    coverage_80: float | None = None  # share of hold-out days inside the 80% interval
    coverage_95: float | None = None

    @classmethod
    def from_scores(
        cls,
        start: date,
        end: date,
        scores: metrics.Scores,
        coverage: tuple[float | None, float | None] = (None, None),
    ) -> BacktestScore:
        return cls(
            start=start,
            end=end,
            n=scores.n,
            rmse=scores.rmse,
            naive_rmse=scores.naive_rmse,
            u2=scores.u2,
            mae=scores.mae,
            mape=scores.mape,
            directional_accuracy=scores.directional_accuracy,
            coverage_80=coverage[0],
            coverage_95=coverage[1],
        )

    def rebased(self, factor: float | None) -> BacktestScore:
        """The score on a history re-based by ``factor`` since (a split): its errors in
        price units scale with it; U2, MAPE, direction and coverage do not."""
        if factor is None:
            return self
        return replace(
            self,
            rmse=self.rmse * factor,
            naive_rmse=self.naive_rmse * factor,
            mae=self.mae * factor,
        )


@dataclass(frozen=True)
class Champion:
    """What ``champion.json`` says about the model serving a ticker.

    Attributes:
        version: The serving version.
        lineage: The retrained version it descends from (itself after a retrain).
        trained_through: The last price date the serving model trained on.
        retrained_on: Run date of the lineage's retrain.
        promoted_on: Run date that made this version the champion.
        preset: The preset the lineage was trained with.
        backtest: The lineage's backtest score (None for champions from before lineages).
        files: The serving version's stored files: ``(VERSION_FILE,)``, or for a version
            stored before the archive its files (``meta.json`` last).
        latest: The highest version stored for the ticker, backfills included (None for
            champions recorded before it was): the next version is the one after it.
        challenged_on: Run date a retrained candidate last lost the comparison with this
            lineage (``auto`` waits before retrying: ``RetrainPolicy.challenge_retry_days``).
        finetune_stopped_on: Run date that stopped fine-tuning this lineage, its fine-tuned
            forecasts being worse than its refit's with evidence
            (:mod:`closecast.pipeline.finetuning`): ``auto`` no longer fine-tunes it, and its
            refit serves.
    """

    version: str
    lineage: str
    trained_through: date
    retrained_on: date
    promoted_on: date
    preset: str
    backtest: BacktestScore | None
    files: tuple[str, ...] = MODEL_FILES
    latest: str | None = None
    challenged_on: date | None = None
    finetune_stopped_on: date | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return json.loads(json.dumps(data, default=lambda v: v.isoformat()))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Champion:
        backtest = data.get("backtest")
        return cls(
            version=str(data["version"]),
            lineage=str(data.get("lineage") or data["version"]),
            trained_through=date.fromisoformat(str(data["trained_through"])),
            retrained_on=date.fromisoformat(str(data["retrained_on"])),
            promoted_on=date.fromisoformat(str(data["promoted_on"])),
            preset=str(data["preset"]),
            files=tuple(str(name) for name in data.get("files", MODEL_FILES)),
            latest=str(data["latest"]) if data.get("latest") else None,
            backtest=None
            if backtest is None
            else BacktestScore(
                **{
                    **backtest,
                    "start": date.fromisoformat(backtest["start"]),
                    "end": date.fromisoformat(backtest["end"]),
                }
            ),
            challenged_on=_date_or_none(data.get("challenged_on")),
            finetune_stopped_on=_date_or_none(data.get("finetune_stopped_on")),
        )


def _date_or_none(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def read_champion(storage: Storage, ticker: str) -> Champion | None:
    """The ticker's champion, or None when it has no model yet.

    Raises:
        ChampionUnreadableError: The pointer exists but is not a valid champion document.
    """
    key = catalog.champion_key(ticker)
    try:
        data = read_json(storage, key)
    except ObjectNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChampionUnreadableError(f"{key} is not valid JSON ({exc})") from exc
    try:
        return Champion.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChampionUnreadableError(f"{key} is not a champion record ({exc!r})") from exc


def write_champion(storage: Storage, ticker: str, champion: Champion) -> str:
    key = catalog.champion_key(ticker)
    write_json(storage, key, champion.to_json())
    return key


def stored_versions(storage: Storage, ticker: str) -> dict[str, set[str]]:
    """Every stored version of the ticker and its files: a walk of ``models/<T>/``, needed
    only when no readable champion records the latest version."""
    prefix = catalog.models_prefix(ticker)
    files: dict[str, set[str]] = {}
    for key in storage.list_keys(prefix):
        version, _, name = key[len(prefix) :].partition("/")
        if catalog.version_number(version) is not None:
            files.setdefault(version, set()).add(name)
    return files


def next_version(storage: Storage, ticker: str, champion: Champion | None = None) -> str:
    """The version a new model of the ticker is stored as: the one after the champion's
    recorded ``latest``, else the first unused ``vNNNN`` (a walk of the ticker's versions)."""
    if champion is not None and champion.latest is not None:
        number = catalog.version_number(champion.latest)
        if number is not None:
            return catalog.version_name(number + 1)
    numbers = [catalog.version_number(version) or 0 for version in stored_versions(storage, ticker)]
    return catalog.version_name(max([0, *numbers]) + 1)


def clear_version(storage: Storage, ticker: str, version: str) -> bool:
    """Make room for a new version: a version past the champion's recorded latest holds only
    what a killed run left (evidence of a crash), so it is deleted. One listing of that
    version alone. Call it holding the ticker's lease.

    Returns:
        Whether anything was left there.
    """
    prefix = f"{catalog.model_prefix(ticker, version)}/"
    if not storage.list_keys(prefix):
        return False
    storage.delete_prefix(prefix)
    return True


def _temp_prefix() -> str:
    # The pid in the name lets a later run tell a live process's directory from one a
    # killed process left behind.
    return f"{TEMP_DIR_PREFIX}{os.getpid()}-"


def remove_orphaned_temp_dirs(temp_root: Path | None = None) -> list[Path]:
    """Delete model staging directories left by processes that no longer exist."""
    root = Path(temp_root or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{TEMP_DIR_PREFIX}*"):
        pid_text = path.name[len(TEMP_DIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or psutil.pid_exists(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_incomplete_versions(storage: Storage, ticker: str, keep: str | None) -> list[str]:
    """Delete versions that are neither an archive nor hold ``meta.json`` (stored last
    before the archive): what a run killed while storing a model left behind. Only for
    tickers whose champion does not record its latest version (else :func:`clear_version`
    is enough). Call it holding the ticker's lease.

    Returns:
        The versions removed.
    """
    removed = []
    for version, names in sorted(stored_versions(storage, ticker).items()):
        if version != keep and not names & {META_FILE, VERSION_FILE}:
            storage.delete_prefix(f"{catalog.model_prefix(ticker, version)}/")
            removed.append(version)
    return removed


def archive_directory(directory: Path) -> bytes:
    """Every file in ``directory`` as one zip archive (stored, not compressed: the network's
    weights do not shrink). Same files, same bytes: no timestamps are recorded."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            archive.writestr(zipfile.ZipInfo(path.name, (1980, 1, 1, 0, 0, 0)), path.read_bytes())
    return buffer.getvalue()


def unpack_archive(data: bytes, key: str, directory: Path) -> None:
    """Write a version archive's files into ``directory``.

    Raises:
        ValueError: Not a zip archive, a member that is not a plain file name, or more than
            :data:`MAX_VERSION_BYTES` unpacked (the message names ``key``).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(info.file_size for info in members) > MAX_VERSION_BYTES:
                raise ValueError(f"{key}: unpacks to more than {MAX_VERSION_BYTES} bytes")
            for info in members:
                name = info.filename
                if name in ("", ".", "..") or name != Path(name).name or "\\" in name:
                    raise ValueError(f"{key}: member {name!r} is not a plain file name")
                (directory / name).write_bytes(archive.read(info))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ValueError(f"{key} is not a model version archive ({exc})") from exc


def read_version_meta(
    storage: Storage, ticker: str, version: str, names: Collection[str]
) -> dict[str, Any]:
    """A stored version's ``meta.json``, from its archive when ``names`` (its stored
    files) hold one, else as a file of its own."""
    prefix = catalog.model_prefix(ticker, version)
    if VERSION_FILE not in names:
        return read_json(storage, f"{prefix}/{META_FILE}")
    key = f"{prefix}/{VERSION_FILE}"
    try:
        with zipfile.ZipFile(io.BytesIO(storage.read_bytes(key))) as archive:
            return json.loads(archive.read(META_FILE))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{key} has no readable {META_FILE} ({exc})") from exc


def save_model(
    storage: Storage, ticker: str, version: str, model: ForecastModel
) -> tuple[str, ...]:
    """Store a model of any kind as a new version: its files in one archive, one request,
    written atomically (a version is complete exactly when its archive exists).

    Returns:
        The stored file names: ``(VERSION_FILE,)``.
    """
    with tempfile.TemporaryDirectory(prefix=_temp_prefix()) as tmp:
        model.save(Path(tmp))
        data = archive_directory(Path(tmp))
    key = f"{catalog.model_prefix(ticker, version)}/{VERSION_FILE}"
    storage.write_bytes(key, data, content_type="application/zip")
    return (VERSION_FILE,)


def load_model(
    storage: Storage, ticker: str, version: str, files: tuple[str, ...] | None = None
) -> ForecastModel:
    """Load a stored version of any kind (:func:`lstm_model.registry.load_model` dispatches
    on its ``meta.json``; ``.keras`` files load in safe mode): its archive in one request,
    or the ``files`` of a version stored before the archive, downloaded together. Without
    ``files`` (a version no champion pointer describes, such as a lineage's root) the
    archive is tried first, then the files of an LSTM version stored before it.

    Raises:
        ValueError: An archive that cannot be unpacked (naming its key), or a model the
            registry refuses.
    """
    prefix = catalog.model_prefix(ticker, version)
    with tempfile.TemporaryDirectory(prefix=_temp_prefix()) as tmp:
        if files is None or tuple(files) == (VERSION_FILE,):
            key = f"{prefix}/{VERSION_FILE}"
            try:
                unpack_archive(storage.read_bytes(key), key, Path(tmp))
                return load_saved_model(Path(tmp))
            except ObjectNotFoundError:
                if files is not None:
                    raise
                files = MODEL_FILES

        def download(name: str) -> None:
            storage.download_file(f"{prefix}/{name}", Path(tmp) / name)

        concurrently(download, files)
        return load_saved_model(Path(tmp))


def save_backtest(storage: Storage, ticker: str, version: str, predictions: pd.DataFrame) -> str:
    """Store a retrained version's hold-out predictions beside it."""
    key = catalog.backtest_key(ticker, version)
    rows = [_prediction_row(record) for record in predictions.to_dict("records")]
    write_parquet(storage, key, rows_to_table(rows, PredictionRow))
    return key


def _prediction_row(record: dict[str, Any]) -> PredictionRow:
    names = PredictionRow.__dataclass_fields__
    return PredictionRow(**{k: v for k, v in record.items() if k in names})


def save_backtest_path(storage: Storage, ticker: str, version: str, path: pd.DataFrame) -> str:
    """Store a retrained version's multi-step hold-out forecasts beside it."""
    key = catalog.backtest_path_key(ticker, version)
    write_parquet(storage, key, path)
    return key


def read_backtest_path(storage: Storage, ticker: str, lineage: str) -> pd.DataFrame | None:
    """A lineage's multi-step hold-out forecasts, if stored."""
    try:
        return read_parquet(storage, catalog.backtest_path_key(ticker, lineage)).to_pandas()
    except ObjectNotFoundError:
        return None


def read_backtest(storage: Storage, ticker: str, lineage: str) -> pd.DataFrame | None:
    """A lineage's hold-out predictions (date, actual, predicted, naive), if stored."""
    try:
        return read_parquet(storage, catalog.backtest_key(ticker, lineage)).to_pandas()
    except ObjectNotFoundError:
        return None
