"""One definition of a run's settings: the command line's options, the flow's parameter form
and the limits all come from ``RunSettings``."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from pydantic import ValidationError

from closecast.cli import build_parser
from closecast.commands.run import setting_fields, settings_from_args
from closecast.pipeline.settings import MAX_HORIZON, RetrainPolicy, RunSettings, setting_errors


def _settings(*argv: str, command: str = "run") -> RunSettings:
    return settings_from_args(build_parser().parse_args([command, *argv]))


def test_every_setting_is_an_option_and_the_defaults_agree() -> None:
    parser = build_parser()
    args = parser.parse_args(["run"])
    for name, _ in setting_fields():
        assert hasattr(args, name), f"RunSettings.{name} has no --{name.replace('_', '-')}"
    assert settings_from_args(args) == RunSettings()


def test_options_reach_the_settings_the_flow_receives() -> None:
    settings = _settings(
        "--tickers", "AAPL,QQQ", "--as-of", "2020-12-07", "--horizon", "3", "--serve", "naive",
        "--min-live-days", "5", "--lease-wait-seconds", "1.5", "--create-bucket",
    )  # fmt: skip
    assert settings.tickers == ("AAPL", "QQQ")
    assert settings.as_of == date(2020, 12, 7)
    assert (settings.horizon, settings.serve, settings.create_bucket) == (3, "naive", True)
    assert settings.policy == RetrainPolicy(min_live_days=5)
    assert settings.lease_wait_seconds == 1.5
    # replay takes its own dates, every other setting the same way
    assert not hasattr(build_parser().parse_args(["replay", "--days", "2"]), "as_of")
    assert _settings("--days", "2", "--horizon", "2", command="replay").horizon == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--horizon", str(MAX_HORIZON + 1)], f"--horizon: at most {MAX_HORIZON}, got 11"),
        (["--horizon", "0"], "--horizon: must be at least 1, got 0"),
        (["--chunk-size", "0"], "--chunk-size: must be at least 1, got 0"),
        (["--min-live-days", "-1"], "--min-live-days: must be at least 0, got -1"),
        (["--finetune-learning-rate", "2"], "--finetune-learning-rate: must be less than 1"),
        (["--preset", "turbo"], "--preset: unknown preset 'turbo'"),
    ],
)
def test_one_set_of_limits_names_the_option(argv, message) -> None:
    with pytest.raises(ValidationError) as raised:
        _settings(*argv)
    problems = [f"--{f.replace('_', '-')}: {why}" for f, why in setting_errors(raised.value)]
    assert any(p.startswith(message) for p in problems), problems


def test_settings_are_frozen_and_reject_unknown_fields() -> None:
    settings = RunSettings()
    with pytest.raises(ValidationError):
        settings.horizon = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="storage_root"):
        RunSettings(storage_root="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="serve"):
        RunSettings(serve="oracle")


@pytest.mark.slow  # a fresh Python process
def test_the_flow_form_shows_each_setting_with_its_limits_without_tensorflow() -> None:
    """What a Prefect worker or the UI's form loads: the flow and its tasks, and the flow's
    parameter schema. Neither imports TensorFlow or Keras (the suite's one check that reading
    the flow leaves them out; tests/test_tensorflow_noise.py keeps their log lines quiet)."""
    code = (
        "import sys, json\n"
        "from prefect.utilities.callables import parameter_schema\n"
        "import flows.daily_forecast, tasks.modelling, tasks.publishing, tasks.prices\n"
        "from flows.daily_forecast import daily_forecast\n"
        "schema = parameter_schema(daily_forecast.fn).model_dump()\n"
        "assert list(schema['properties']) == ['settings'], schema['properties']\n"
        "fields = schema['definitions']['RunSettings']['properties']\n"
        "assert fields['horizon']['minimum'] == 1 and fields['horizon']['maximum'] == 10\n"
        "assert 'naive' in fields['serve']['enum'] and fields['serve']['description']\n"
        "assert fields['mode']['enum'] == ['auto', 'retrain', 'finetune']\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_the_line_up_is_every_registered_model_unless_the_run_names_fewer() -> None:
    from closecast.control.choices import model_choices

    assert RunSettings().models == model_choices()
    assert RunSettings().global_models() == ("global_ar", "global_lstm")
    assert _settings().models == model_choices()  # the option's default is the same line-up
    narrow = _settings("--models", "naive,global_ar,lstm")
    assert narrow.models == ("lstm", "naive", "global_ar")  # registry order, one spelling
    assert narrow.global_models() == ("global_ar",)
    assert _settings("--models", "lstm,naive").global_models() == ()
    assert narrow.recorded()["models"] == ["lstm", "naive", "global_ar"]  # in the manifest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "lstm,naive,gru"], "--models: unknown model 'gru'; known: lstm, naive"),
        (["--models", "lstm,drift"], "--models: the line-up always holds lstm and naive; add"),
        (["--models", "naive"], "--models: the line-up always holds lstm and naive; add lstm"),
        (["--models", "lstm,naive,lstm"], "--models: a model named twice in lstm,naive,lstm"),
        (["--models", "lstm,naive", "--serve", "global_lstm"],
         "--models: serve 'global_lstm' is not in the line-up lstm,naive"),
    ],
)  # fmt: skip
def test_a_line_up_without_what_the_run_needs_is_refused(argv, message) -> None:
    with pytest.raises(ValidationError) as raised:
        _settings(*argv)
    problems = [f"--{f.replace('_', '-')}: {why}" for f, why in setting_errors(raised.value)]
    assert any(p.startswith(message) for p in problems), problems
    assert _settings("--models", "lstm,naive", "--serve", "auto").serve == "auto"
