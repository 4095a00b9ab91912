"""Model versions and the champion pointer of each ticker, kept in storage.

A ticker's models live at ``models/<T>/vNNNN/`` (``model.keras``, ``scaler.json``,
``meta.json``); ``models/<T>/champion.json`` names the version that serves forecasts. The
pointer is written only after every file of the version it names is stored, so a reader never
follows it to a half-written model.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from closecast.pipeline.layout import champion_key, model_prefix
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.io import read_json, write_json
from lstm_model.forecaster import Forecaster

_VERSION = re.compile(r"^v(\d{4,})$")
MODEL_FILES: tuple[str, ...] = ("model.keras", "scaler.json", "meta.json")


@dataclass(frozen=True)
class Champion:
    """What ``champion.json`` says about the model serving a ticker."""

    version: str
    trained_through: date
    retrained_on: date
    promoted_on: date
    preset: str
    u2_at_promotion: float | None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for name in ("trained_through", "retrained_on", "promoted_on"):
            data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Champion:
        return cls(
            version=str(data["version"]),
            trained_through=date.fromisoformat(str(data["trained_through"])),
            retrained_on=date.fromisoformat(str(data["retrained_on"])),
            promoted_on=date.fromisoformat(str(data["promoted_on"])),
            preset=str(data["preset"]),
            u2_at_promotion=None
            if data.get("u2_at_promotion") is None
            else float(data["u2_at_promotion"]),  # type: ignore[arg-type]
        )


def read_champion(storage: Storage, ticker: str) -> Champion | None:
    """The ticker's champion, or None when it has no model yet."""
    try:
        return Champion.from_json(read_json(storage, champion_key(ticker)))
    except ObjectNotFoundError:
        return None


def write_champion(storage: Storage, ticker: str, champion: Champion) -> str:
    key = champion_key(ticker)
    write_json(storage, key, champion.to_json())
    return key


def next_version(storage: Storage, ticker: str) -> str:
    """The first unused ``vNNNN`` for the ticker."""
    numbers = [0]
    for key in storage.list_keys(f"models/{ticker}/"):
        parts = key.split("/")
        if len(parts) > 2 and (match := _VERSION.match(parts[2])):
            numbers.append(int(match.group(1)))
    return f"v{max(numbers) + 1:04d}"


def save_model(storage: Storage, ticker: str, version: str, forecaster: Forecaster) -> list[str]:
    """Store a forecaster as a new version; returns the keys written."""
    prefix = model_prefix(ticker, version)
    keys = []
    with tempfile.TemporaryDirectory(prefix="closecast-model-") as tmp:
        forecaster.save(Path(tmp))
        for name in MODEL_FILES:
            key = f"{prefix}/{name}"
            storage.upload_file(key, Path(tmp) / name)
            keys.append(key)
    return keys


def load_model(storage: Storage, ticker: str, version: str) -> Forecaster:
    """Load a stored version (``.keras`` with safe mode, JSON for the rest)."""
    prefix = model_prefix(ticker, version)
    with tempfile.TemporaryDirectory(prefix="closecast-model-") as tmp:
        for name in MODEL_FILES:
            storage.download_file(f"{prefix}/{name}", Path(tmp) / name)
        return Forecaster.load(Path(tmp))
