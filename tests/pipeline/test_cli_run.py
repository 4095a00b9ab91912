"""``closecast run``: exit codes, configuration errors that say what to fix, the final table."""

from __future__ import annotations

import json
from datetime import date

import pytest

from closecast.cli import main
from closecast.pipeline.settings import RunSettings

AS_OF = "2020-12-11"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "turbo"], "unknown preset 'turbo'"),
        (["--epochs", "0"], "epochs"),
        (["--source", "ftp://x"], "unknown price source"),
        (["--workers", "0"], "--workers: must be at least 1"),
        (["--horizon", "11"], "--horizon: at most 10, got 11"),
        (["--tickers", "AAPL,not a ticker"], "not a ticker symbol"),
        (["--watchlist", "missing.yaml"], "missing.yaml: no such watchlist file"),
    ],
)
def test_bad_configuration_exits_2_and_says_what_to_fix(tmp_path, capsys, argv, message) -> None:
    code = main(["run", "--storage", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreachable_storage_exits_2_naming_the_endpoint(monkeypatch, capsys, closed_port) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-to-be-printed")
    code = main(["run", "--storage", "s3://closecast-nowhere/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert endpoint in err and "closecast-nowhere" in err
    assert "not-to-be-printed" not in err


def test_a_run_dated_after_the_source_today_exits_2(tmp_path, capsys) -> None:
    code = main(["run", "--as-of", "2999-01-01", "--storage", str(tmp_path / "s")])
    assert code == 2
    assert "--as-of: 2999-01-01 is after the sample source's current date 2020-12-11" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "5", "--from", "2020-12-01"], "exactly one of --from and --days"),
        (["--days", "0"], "--days: must be 1..3660"),
        (["--from", "2020-12-10", "--to", "2020-12-01"], "--from: 2020-12-10 is after --to"),
        (["--days", "3", "--to", "2999-01-01"], "--to: 2999-01-01 is after"),
    ],
)
def test_bad_replay_ranges_exit_2(tmp_path, capsys, argv, message) -> None:
    assert main(["replay", "--storage", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_usage_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--mode", "sometimes"])
    assert exit_info.value.code == 2


@pytest.mark.usefixtures("prefect_harness")
def test_run_exits_1_when_a_ticker_fails_and_prints_the_table(tmp_path, capsys) -> None:
    models = "lstm,naive,drift,seasonal_naive,global_ar"  # global_lstm: most of the time
    argv = ["run", "--tickers", "QQQ,NOSUCH", "--preset", "fast", "--as-of", AS_OF]
    argv += ["--models", models]
    code = main([*argv, "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "QQQ" in out and "NOSUCH" in out and "failed" in out
    assert "metrics/run_date=2020-12-11/watchlist=adhoc/" in out
    assert "K = global_ar:" in out  # the global models of the run's line-up

    # The manifest (published for the ticker that succeeded) says how the run was made:
    # every setting, defaults included.
    manifest = json.loads((tmp_path / "runs/run_date=2020-12-11/watchlist=adhoc/manifest.json")
                          .read_text())  # fmt: skip
    assert manifest["tickers"]["QQQ"]["status"] == "ok"
    recorded = manifest["parameters"]
    assert (
        recorded
        == RunSettings(
            tickers=["QQQ", "NOSUCH"],
            preset="fast",
            as_of=date(2020, 12, 11),
            storage=str(tmp_path),
            models=models,
        ).recorded()
    )
    assert recorded["horizon"] == 1 and recorded["serve"] == "lstm"
    assert recorded["policy"]["max_model_age_days"] == 30


def test_the_longest_horizon_is_accepted_at_its_limit(tmp_path) -> None:
    import argparse

    from closecast.commands.run import add_run_options, check_configuration, settings_from_args

    parser = argparse.ArgumentParser()
    add_run_options(parser)
    args = parser.parse_args(["--storage", str(tmp_path), "--horizon", "10"])
    assert check_configuration(args) == []
    assert settings_from_args(args).horizon == 10
