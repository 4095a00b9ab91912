"""``closecast run``: run the daily forecast flow once, here and now."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from datetime import date
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from closecast.commands._temporary_server import (
    TemporaryServer,
    TemporaryServerError,
    prefect_api_for_this_command,
    startup_timeout,
)

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from closecast.pipeline.settings import RunSettings

# Exit codes: every ticker succeeded / some ticker failed / bad usage or configuration.
EXIT_OK, EXIT_TICKER_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_CODES = {
    EXIT_OK: "every ticker succeeded, or no market traded on the run date (nothing to do)",
    EXIT_TICKER_FAILED: "some ticker failed (its metrics row says why; the others are published)",
    EXIT_CONFIG: "bad usage or configuration; the message says what to fix",
    143: "stopped by SIGTERM or Ctrl-C; nothing more was published",  # interrupts.EXIT_TERMINATED
}
EXAMPLES = (
    "closecast run --tickers AAPL,BTC-USD --as-of 2020-12-07",
    "closecast run --watchlist my-watchlist.yaml --source yahoo --storage s3://my-bucket/closecast",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_options(parser)


# How a setting's value is shown in the usage line (presentation only).
METAVARS = {
    "watchlist": "FILE",
    "tickers": "A,B",
    "models": "M,M",
    "watchlist_name": "NAME",
    "storage": "ROOT",
    "as_of": "YYYY-MM-DD",
    "dask_address": "tcp://HOST:PORT",
    "credentials_block": "TYPE/NAME",
}


def add_run_options(parser: argparse.ArgumentParser, *, exclude: Sequence[str] = ()) -> None:
    """One option per field of :class:`~closecast.pipeline.settings.RunSettings` (the retrain
    policy's fields by their own names), its help the field's description and its default
    the field's default; ``exclude`` leaves some out (``replay`` has its own dates)."""
    for name, field in setting_fields():
        if name not in exclude:
            parser.add_argument(f"--{name.replace('_', '-')}", **_argument(name, field))


def setting_fields() -> list[tuple[str, FieldInfo]]:
    """The settings' fields in order, the nested retrain policy's in place of ``policy``."""
    from closecast.pipeline.settings import RetrainPolicy, RunSettings

    fields: list[tuple[str, FieldInfo]] = []
    for name, field in RunSettings.model_fields.items():
        if field.annotation is RetrainPolicy:
            fields += list(RetrainPolicy.model_fields.items())
        else:
            fields.append((name, field))
    return fields


def _argument(name: str, field: FieldInfo) -> dict[str, Any]:
    """``add_argument`` keywords for a settings field, from its type and metadata."""
    help_text = (field.description or "").rstrip(".").replace("%", "%%") + _limits(field)
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None: the option takes an X
        kind = next(a for a in get_args(kind) if a is not type(None))
    if kind is bool:  # --x, or --x/--no-x when on by default
        on = field.get_default() is True
        action = argparse.BooleanOptionalAction if on else "store_true"
        return {"action": action, "default": on, "help": help_text}
    default = field.get_default(call_default_factory=True)
    if isinstance(default, tuple):  # a list setting's option takes it comma-separated
        default = ",".join(default)
    keywords: dict[str, Any] = {"default": default}
    keywords["help"] = help_text
    if name in METAVARS:
        keywords["metavar"] = METAVARS[name]
    if get_origin(kind) is Literal:
        keywords["choices"] = get_args(kind)
    elif callable(field.json_schema_extra):  # choices known only when asked (serve)
        schema: dict[str, Any] = {}
        field.json_schema_extra(schema)
        if "enum" in schema:  # one of them (a list setting's items are checked by the model)
            keywords["choices"] = tuple(schema["enum"])
    elif kind is date:
        keywords["type"] = date.fromisoformat
    elif kind in (int, float):
        keywords["type"] = kind
    return keywords


def _limits(field: FieldInfo) -> str:
    """A field's numeric limits as the help shows them: `` (1..10)``, `` (at least 1)``."""
    bounds = {name: getattr(m, name) for m in field.metadata for name in ("ge", "gt", "le", "lt")
              if getattr(m, name, None) is not None}  # fmt: skip
    low = f"{bounds['ge']}" if "ge" in bounds else f">{bounds['gt']}" if "gt" in bounds else ""
    high = f"{bounds['le']}" if "le" in bounds else f"<{bounds['lt']}" if "lt" in bounds else ""
    if low and high:
        inclusive = "ge" in bounds and "le" in bounds
        return (
            f" ({low}..{high})"
            if inclusive
            else f" (between {low.strip('>')} and {high.strip('<')})"
        )
    if low:
        return f" (at least {low})" if "ge" in bounds else f" (more than {bounds['gt']})"
    return f" (at most {high})" if high else ""


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The run settings the options give (validated).

    Raises:
        pydantic.ValidationError: A value out of its limits (:func:`setting_errors`).
    """
    from closecast.pipeline.settings import RetrainPolicy, RunSettings

    values: dict[str, Any] = {}
    for name, _ in setting_fields():
        if hasattr(args, name):
            values[name] = getattr(args, name)
    values["policy"] = {n: values.pop(n) for n in RetrainPolicy.model_fields if n in values}
    return RunSettings.model_validate(values)


def check_configuration(args: argparse.Namespace) -> list[str]:
    """Everything that can be checked before the flow starts, as messages saying what to fix.

    Nothing here writes: a configuration error leaves the storage root untouched.
    """
    from pydantic import ValidationError

    from closecast.inputs.watchlist import WatchlistError, split_tickers
    from closecast.outputs.catalog import CatalogError
    from closecast.pipeline.run_tickers import select
    from closecast.pipeline.settings import setting_errors
    from closecast.sources import CsvDirSource, FutureRunDateError, check_run_date, get_source
    from closecast.storage import StorageError, open_storage

    problems = []
    selection = None
    try:
        selection = select(args.watchlist, split_tickers(args.tickers), args.watchlist_name)
    except (WatchlistError, CatalogError) as exc:
        problems.append(f"watchlist: {exc}")
    try:
        source = get_source(args.source)
        if isinstance(source, CsvDirSource) and not source.directory.is_dir():
            problems.append(f"--source: {args.source!r}: no such directory {source.directory}")
    except ValueError as exc:
        problems.append(f"--source: {exc}")
    else:
        as_of = getattr(args, "as_of", None)  # replay has no --as-of
        if as_of is not None and selection is not None and not problems:
            try:
                check_run_date(source, as_of, selection.symbols)
            except FutureRunDateError as exc:
                problems.append(f"--as-of: {exc}")
    try:
        settings_from_args(args)
    except ValidationError as exc:
        problems += [f"--{name.replace('_', '-')}: {why}" for name, why in setting_errors(exc)]
    try:
        open_storage(
            args.storage,
            create_bucket=args.create_bucket,
            credentials_block=args.credentials_block,
        ).check()
    except (StorageError, ValueError) as exc:  # StorageConfigError is both
        problems.append(f"--storage: {exc}")
    return problems


def _print_metrics(args: argparse.Namespace, run_date: date) -> bool:
    """Print the run's metrics and where its outputs are; False when it published none."""
    from closecast.inputs.watchlist import split_tickers
    from closecast.outputs import catalog
    from closecast.pipeline.run_tickers import select
    from closecast.storage import open_storage
    from closecast.storage.io import read_parquet

    selection = select(args.watchlist, split_tickers(args.tickers), args.watchlist_name)
    scope = catalog.RunScope(run_date, selection.name)
    storage = open_storage(args.storage, credentials_block=args.credentials_block)
    if not storage.exists(catalog.METRICS.key(scope)):
        return False
    frame = read_parquet(storage, catalog.METRICS.key(scope)).to_pandas()
    columns = [
        "ticker", "status", "mode", "backtest_u2", "live_n_lineage", "live_u2_lineage",
        "model_version", "error",
    ]  # fmt: skip
    print()
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nOutputs under {storage.describe()}:")
    print(f"  this run's tables and plots ({run_date}, watchlist {scope.watchlist}):")
    for key in catalog.run_prefixes(scope):
        print(f"    {key}")
    print(f"  kept per ticker across runs, T = {_some(list(frame['ticker']))}:")
    for key, what in _ticker_state_keys():
        print(f"    {key:<34} {what}")
    kinds = settings_from_args(args).global_models()  # the run's line-up's
    if kinds:
        print(f"  kept per watchlist across runs, K = {', '.join(kinds)}:")
        champion = catalog.global_champion_key(scope.watchlist, "K")
        print(f"    {champion:<34} the global model fit on all of {scope.watchlist}'s tickers")
    print("  Read them with DuckDB or pyarrow: docs/reading.md")
    return True


def _some(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _ticker_state_keys() -> list[tuple[str, str]]:
    """The per-ticker objects every run reads and updates, for the closing message."""
    from closecast.outputs import catalog

    ticker = "T"
    return [
        (catalog.prices_key(ticker), "the validated price history"),
        (catalog.served_key(ticker), "the live record: forecasts served, scored once known"),
        (catalog.champion_key(ticker), "the serving model version, its lineage and scores"),
        (f"{catalog.models_prefix(ticker)}vNNNN/", "every model version (model, scaler, meta)"),
    ]


def _print_how_to_see_it_in_the_ui(state: Any, temporary: bool) -> None:
    """Where this run can be seen in the Prefect UI: the server it reported to, or, after a
    run on a temporary server (stopped with the command), a server started on its database."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    run_id = state.state_details.flow_run_id
    if settings.api.url and not temporary:
        ui = settings.ui_url or settings.api.url.removesuffix("/api")
        print(f"\nIn the Prefect UI: {ui}/runs/flow-run/{run_id}")
        return
    print(
        "\nPrefect ran in ephemeral mode: its temporary server has stopped, but the run is "
        f"recorded in {settings.home}. To see it in the UI, start a server on that record "
        "(.venv/bin/prefect server start) and open "
        f"http://127.0.0.1:4200/runs/flow-run/{run_id}, or run against the local stack "
        "(make stack-up, then PREFECT_API_URL=http://127.0.0.1:4200/api make run; "
        "docs/stack.md)."
    )


def prepare_flow(settings: RunSettings, server: TemporaryServer | None) -> None:
    """Load what the flow's tasks will load anyway while the temporary server boots in its
    own process, then wait for it: the two start-ups overlap instead of adding up.

    With the threads runner the tasks run in this process, so TensorFlow (imported by the
    modelling task) is loaded here; other runners' workers load their own.
    """
    import flows.daily_forecast  # noqa: F401  (Prefect, the pipeline, pandas, matplotlib)

    if settings.task_runner == "threads":
        import lstm_model.model  # noqa: F401  (TensorFlow, quietly)
    # The libraries' objects (about 700k with Prefect and TensorFlow loaded) live as long as
    # the process: frozen out of garbage collection, each later full collection (one after
    # every chunk's training, and Python's own) skips them instead of costing 0.45 s of CPU.
    gc.collect()
    gc.freeze()
    if server is not None:
        server.wait_until_ready(startup_timeout())


def run(args: argparse.Namespace) -> int:
    problems = check_configuration(args)
    if problems:
        for problem in problems:
            print(f"closecast run: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    with prefect_api_for_this_command() as server:
        try:
            prepare_flow(settings_from_args(args), server)
        except TemporaryServerError as exc:
            print(f"closecast run: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return _run_flow(args, temporary=server is not None)


def _run_flow(args: argparse.Namespace, *, temporary: bool) -> int:
    from closecast.control.interrupts import (
        EXIT_TERMINATED,
        interrupt_main_thread_on_sigterm,
        stopped_by_signal,
    )
    from flows.daily_forecast import daily_forecast
    from lstm_model.interrupt import stop_requested

    interrupt_main_thread_on_sigterm()
    try:
        state = daily_forecast(settings_from_args(args), return_state=True)
    except BaseException as exc:
        if not stopped_by_signal(exc):
            raise
        print("closecast run: stopped (SIGTERM or Ctrl-C); this run published no manifest",
              file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    if stop_requested():
        print(f"closecast run: stopped (SIGTERM); {state.name}, no manifest published",
              file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    run_date = args.as_of
    if run_date is None:  # the flow resolved it the same way
        from closecast.inputs.watchlist import split_tickers
        from closecast.pipeline.run_tickers import select
        from closecast.sources import get_source

        symbols = select(args.watchlist, split_tickers(args.tickers), args.watchlist_name).symbols
        run_date = get_source(args.source).today(symbols)
    try:
        published = _print_metrics(args, run_date)
    except Exception as exc:  # published, but unreadable now: say so, keep the exit status
        print(f"closecast run: cannot read this run's metrics ({exc})", file=sys.stderr)
    else:
        if not published and state.is_completed():  # the flow had nothing to do; it says why
            print(f"closecast run: nothing to do, nothing published: {state.message}")
        elif not published:
            print("closecast run: no metrics were published", file=sys.stderr)
    _print_how_to_see_it_in_the_ui(state, temporary)
    print(f"\n{state.name}: {state.message or ''}")
    return EXIT_OK if state.is_completed() else EXIT_TICKER_FAILED
