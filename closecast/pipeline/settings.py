"""A run's settings, defined once: the flow's only parameter, the source of the ``run`` and
``replay`` options, and what a run's manifest records under ``parameters``.

:class:`RunSettings` is a frozen pydantic model: Prefect builds the deployment's parameter
form from its fields (titles, descriptions, defaults, choices and limits) and validates a
run's parameters against it; the command line builds its options from the same fields
(``closecast.commands.run``). Every limit lives here, once.

A light module: pydantic and the choices only (the command line imports it without pandas,
TensorFlow or Prefect; the ``serve`` choices load the model registry, with pandas, when a
value is checked).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from closecast.control.choices import AUTO_SERVE, RequestedMode, RunnerKind

if TYPE_CHECKING:
    from lstm_model.config import ModelConfig

MAX_EPOCHS = 10_000
"""Most training epochs a run accepts (the tutorial's 1000 with room): beyond it a run would
train for days and hold its leases all that time."""

MAX_HORIZON = 10
"""Most trading days ahead a run forecasts."""


def _serve_choices_schema(schema: dict[str, Any]) -> None:
    """The ``serve`` choices in the parameter form, read from the model registry only when
    Prefect builds the form (never at import)."""
    from closecast.control.choices import serve_choices

    schema["enum"] = list(serve_choices())


REQUIRED_MODELS: tuple[str, ...] = ("lstm", "naive")
"""Models every line-up holds: the per-ticker LSTM the run trains and versions, and the naive
forecast every model is scored against (``auto`` serves it when nothing beats it)."""


def every_model() -> tuple[str, ...]:
    """Every registered model kind, the default line-up (read from the model registry when
    asked, never at import)."""
    from closecast.control.choices import model_choices

    return model_choices()


def _models_schema(schema: dict[str, Any]) -> None:
    """The line-up's choices and default in the parameter form (see :func:`every_model`)."""
    schema["items"] = {"type": "string", "enum": list(every_model())}
    schema["default"] = list(every_model())


class RetrainPolicy(BaseModel):
    """When ``auto`` mode retrains, and when a retrained candidate is promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_model_age_days: int = Field(
        30, ge=0, description="Retrain when the lineage's retrain is older than this (days)."
    )
    max_u2_degradation: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="The degradation tolerated before the live record triggers a retrain: it "
        "does when the 95% interval of the lineage's live U2 (Diebold-Mariano, narrowing as "
        "scored days accrue) lies above its backtest U2 plus this, or when the live record is "
        "worse than naive with evidence (one-sided p > 0.975); over at least min_live_days "
        "scored served forecasts. 0: any degradation shown with evidence.",
    )
    min_live_days: int = Field(
        20,
        ge=0,
        description="Scored served forecasts the live record needs before it can trigger a "
        "retrain.",
    )
    min_compare_days: int = Field(
        10,
        ge=0,
        description="Days a retrained candidate's backtest must share with the champion "
        "lineage's live record to be compared with it (with fewer it is promoted: there is "
        "no honest evidence for the champion).",
    )
    range_tolerance: float = Field(
        0.05,
        ge=0,
        allow_inf_nan=False,
        description="For presets with one global scaler: retrain when unseen prices leave "
        "the champion's fitted range by more than this fraction of the range.",
    )
    challenge_retry_days: int = Field(
        7,
        ge=0,
        description="After a retrained candidate lost the comparison with the champion "
        "(challenged_on in the pointer), days auto waits before the age, range or live-record "
        "rules may retrain again: a week of new live days can change the comparison, a day "
        "cannot.",
    )


class RunSettings(BaseModel):
    """Everything that says how a run is made; recorded whole in its manifest.

    Services (the storage, leases, the model configuration) are opened from it where they
    are used (:class:`closecast.pipeline.services.RunServices`), never carried in it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    watchlist: str | None = Field(
        None,
        description="A watchlist YAML file: tickers: [{symbol, asset_class: "
        "stock|etf|crypto}], or bare symbols with the class guessed (default: the packaged "
        "AAPL, GOOG, QQQ, BTC-USD).",
    )
    tickers: tuple[str, ...] | None = Field(
        None,
        description="Symbols: with watchlist, the subset of it to rerun (the others' outputs "
        "for the date are kept); alone, an ad-hoc run filed under the watchlist name 'adhoc'.",
    )
    watchlist_name: str | None = Field(
        None,
        description="The name outputs are filed under (default: the watchlist file's stem, "
        "'default' for the packaged watchlist, 'adhoc' for bare tickers).",
    )
    source: str = Field(
        "sample",
        description="Price source: sample (shipped histories, offline), yahoo (yfinance) or "
        "csv:DIR (DIR/<TICKER>.csv Yahoo exports).",
    )
    storage: str = Field(
        "./closecast-data",
        description="Where outputs go: a local directory or s3://bucket/prefix.",
    )
    as_of: date | None = Field(
        None,
        description="The run date: prices up to it, forecasts for the next trading day "
        "(default: the source's current date; the sample's is 2020-12-11; for csv:DIR, the "
        "latest date of the requested tickers' files). Never after it.",
    )
    mode: RequestedMode = Field(
        "auto",
        description="auto: per ticker, retrain or fine-tune as the retrain policy says (the "
        "reason is recorded); retrain: train anew; finetune: fine-tune the serving model.",
    )
    preset: str = Field(
        "default",
        description="Model preset: default, fast (tiny, for tests) or tutorial (the original "
        "tutorial's network).",
    )
    epochs: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="Override the preset's training epochs (default: the preset's).",
    )
    policy: RetrainPolicy = Field(
        default_factory=RetrainPolicy,
        description="When auto mode retrains, and when a retrained candidate is promoted.",
    )
    finetune_epochs: int = Field(5, ge=1, le=MAX_EPOCHS, description="Epochs of a fine-tune.")
    finetune_learning_rate: float = Field(
        1e-4, gt=0, lt=1, description="Learning rate of a fine-tune."
    )
    serve: str = Field(
        "lstm",
        description="Whose forecast is served: the LSTM, a baseline, or auto (the model that "
        "beats naive with evidence on the backtest days, else naive); a watchlist entry's "
        "serve overrides it.",
        json_schema_extra=_serve_choices_schema,
    )
    models: tuple[str, ...] = Field(
        default_factory=every_model,
        description="The line-up: the models fit, scored and served beside each other "
        "(every registered one by default); lstm and naive are always in it. Without the "
        "global models the run skips its pooled step (global_lstm trains a network on every "
        "ticker).",
        json_schema_extra=_models_schema,
    )
    horizon: int = Field(
        1,
        ge=1,
        le=MAX_HORIZON,
        description="Trading days ahead to forecast, each scored against its own naive "
        "forecast (the last known price).",
    )
    task_runner: RunnerKind = Field(
        "threads",
        description="Where the per-ticker work runs: threads of this process, a local process "
        "pool, or Dask (a local cluster, or dask_address).",
    )
    workers: int = Field(2, ge=1, description="Parallel tickers (threads, processes or workers).")
    chunk_size: int = Field(
        100,
        ge=1,
        description="Most tickers trained together in one task (one traced graph serves them "
        "all; see docs/scaling.md).",
    )
    ticker_plots: int = Field(
        50,
        ge=0,
        description="Draw each ticker's plot when the run forecasts at most this many tickers "
        "(a plot costs about 0.2 s); larger runs draw none (the summary plot and the run "
        "summary, with the best and worst tickers, always render). 0: never.",
    )
    ui_artifacts: bool = Field(
        True,
        description="Publish the run's Prefect UI artifacts: the metrics table, the summary "
        "with its plots and the progress bar (the tables, plots and manifest in storage are "
        "published either way). closecast replay publishes them on its last day only.",
    )
    dask_address: str | None = Field(
        None,
        description="Scheduler of an existing Dask cluster, with the dask task runner "
        "(default: start a local cluster of workers processes).",
    )
    create_bucket: bool = Field(False, description="Create the S3 bucket if it is missing.")
    credentials_block: str | None = Field(
        None,
        description="Prefect block holding the S3 credentials, e.g. minio-credentials/NAME "
        "(default: the standard AWS environment and config files).",
    )
    lease_wait_seconds: float = Field(
        900.0,
        ge=0,
        description="How long to wait for another run of the same date and watchlist, or of "
        "the same ticker, before failing with a message naming it.",
    )
    lease_ttl_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a run's lease outlives the run if it is killed (renewed every "
        "third of this while the run lives).",
    )

    @field_validator("tickers", mode="before")
    @classmethod
    def _split_tickers(cls, value: Any) -> Any:
        """A comma-separated string (the command line's form) is a list of symbols."""
        from closecast.inputs.watchlist import split_tickers

        return split_tickers(value) if isinstance(value, str) else value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        """A comma-separated string (the command line's form) is a list of model kinds."""
        return tuple(value.split(",")) if isinstance(value, str) else value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = every_model()
        unknown = [kind for kind in value if kind not in known]
        if unknown:
            raise ValueError(
                f"unknown model {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
            )
        missing = [kind for kind in REQUIRED_MODELS if kind not in value]
        if missing:
            raise ValueError(
                f"the line-up always holds {' and '.join(REQUIRED_MODELS)}; "
                f"add {', '.join(missing)}"
            )
        if len(set(value)) < len(value):
            raise ValueError(f"a model named twice in {','.join(value)}")
        serve = info.data.get("serve")  # validated before: it comes first
        if serve not in (None, AUTO_SERVE, *value):
            raise ValueError(f"serve {serve!r} is not in the line-up {','.join(value)}")
        return tuple(kind for kind in known if kind in value)  # registry order, one spelling

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from lstm_model.config import get_preset  # light: dataclasses only

        get_preset(value)
        return value

    @field_validator("serve")
    @classmethod
    def _known_serve(cls, value: str) -> str:
        from closecast.control.choices import serve_choices

        if value not in serve_choices():
            raise ValueError(f"serve {value!r} is not one of {', '.join(serve_choices())}")
        return value

    def training_config(self) -> ModelConfig:
        """The preset's :class:`lstm_model.config.ModelConfig` with this run's overrides."""
        from lstm_model.config import get_preset

        config = get_preset(self.preset)
        return config.with_overrides(epochs=self.epochs) if self.epochs is not None else config

    def global_models(self) -> tuple[str, ...]:
        """The line-up's global models: what the run's pooled step fits."""
        from lstm_model.registry import GLOBAL_MODELS

        return tuple(kind for kind in self.models if kind in GLOBAL_MODELS)

    def recorded(self) -> dict[str, Any]:
        """The settings as the manifest records them: every field, JSON-ready."""
        return self.model_dump(mode="json")


def setting_errors(error: ValidationError) -> list[tuple[str, str]]:
    """Each problem of a rejected :class:`RunSettings` as (field, what to fix), the field
    named as in the settings (a policy field by its own name)."""
    problems = []
    for detail in error.errors():
        field = str(detail["loc"][-1]) if detail["loc"] else "settings"
        problems.append((field, _explain(detail)))
    return problems


def _explain(detail: Any) -> str:
    ctx, got = detail.get("ctx") or {}, detail.get("input")
    kind = detail["type"]
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {got}"
    if kind == "less_than_equal":
        return f"at most {ctx['le']}, got {got}"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}, got {got}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"]))
    return f"{detail['msg']}, got {got!r}"
