"""The local stack end to end: a real Prefect server on loopback, the work pool, the
deployments of deployments/prefect.yaml and a process worker, all started by
``closecast.control.stack``; one deployment run into S3 (moto on loopback), its ticker trained
in a process-pool worker, read back through the Prefect API; then everything stopped, with no
process left behind. The worker's output is also where TensorFlow's C++ log lines would show
(tests/test_tensorflow_noise.py checks the CLI's)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from closecast.control import stack
from closecast.pipeline.settings import every_model
from lstm_model.quiet import is_tensorflow_log_line

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _run_and_read_back(s3_root: str) -> dict:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("daily-forecast/stocks-daily")
        # A run's settings replace the deployment's whole: start from them, as the UI's
        # form does.
        settings = deployment.parameters["settings"] | {
            "tickers": ["QQQ"],
            "preset": "fast",
            "epochs": 2,
            "source": "sample",
            "as_of": "2020-12-11",
            "storage": s3_root,
            # No test here looks at global_lstm, which trains a network in the run.
            "models": [kind for kind in every_model() if kind != "global_lstm"],
            # The ticker trains in a process-pool worker of the flow run: TensorFlow's C++
            # lines would reach the worker's output from there too.
            "task_runner": "processes",
            "workers": 1,  # one pool process (each imports the pipeline and TensorFlow)
        }
        run = await client.create_flow_run_from_deployment(
            deployment.id, parameters={"settings": settings}
        )
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                break
            assert time.monotonic() < deadline, f"run still {run.state} after {RUN_TIMEOUT} s"
            await asyncio.sleep(2)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
                key=ArtifactFilterKey(
                    any_=["closecast-metrics-stocks", "closecast-summary-stocks"]
                ),
            )
        )
        child_runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))
        )
        all_task_runs = await client.read_task_runs()
        deployments = {
            name: await client.read_deployment_by_name(f"daily-forecast/{name}")
            for name in ("stocks-daily", "crypto-daily", "weekly-retrain")
        }
        return {
            "run": run,
            "artifacts": {a.key: a for a in artifacts},
            "flow_task_runs": {t.name for t in child_runs},
            "task_runs": {t.name for t in all_task_runs},
            "deployments": deployments,
        }


def _cron(deployment) -> dict[str, tuple[str, str, dict]]:
    return {
        s.slug or "default": (s.schedule.cron, s.schedule.timezone, s.parameters)
        for s in deployment.schedules
    }


@pytest.mark.slow  # server, worker and a deployment run
def test_stack_runs_a_deployment_and_stops_cleanly(
    tmp_path, s3_env, s3_root, s3_client, monkeypatch, migrated_prefect_home
):
    # As a user's shell starts the stack: without the TensorFlow logging settings this test
    # session sets for itself (tests/conftest.py), so only closecast keeps TensorFlow quiet.
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(name, raising=False)
    config = stack.StackConfig.from_environment(
        project_root=PROJECT_ROOT,
        state_dir=tmp_path / "stack",
        port=_free_port(),
        ui=False,
        storage=str(tmp_path / "unused-default-storage"),
        source="sample",
        env={"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_LOGGING_LEVEL": "INFO"},
    )
    migrated_prefect_home(config.prefect_home)  # the server needs no migrations first
    pids: list[int] = []
    try:
        state = stack.up(config, timeout=240)
        pids = [state["server"], state["worker"]]
        assert {d["name"] for d in state["deployments"]} == {
            "stocks-daily",
            "crypto-daily",
            "weekly-retrain",
        }
        assert stack.status(config)["workers_online"]
        with temporary_settings({PREFECT_API_URL: config.api_url}):
            result = asyncio.run(_run_and_read_back(s3_root))
    finally:
        stopped = stack.stop(config)
        worker_output = config.log_file("worker").read_text("utf-8", errors="replace")
        worker_log = "\n".join(worker_output.splitlines()[-60:])

    # Stopped: no process of the stack is left, the port is free again.
    assert set(pids) <= set(stopped)
    assert stack.stack_processes(config) == []
    for pid in stopped:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.connect_ex((config.host, config.port)) != 0
    # docs/stack.md names the logs the stack writes, and no other.
    doc = (PROJECT_ROOT / "docs" / "stack.md").read_text(encoding="utf-8")
    listed = doc[doc.index("Everything the stack writes") :].split("\n\n", 1)[0]
    logs = {path.name for path in config.state_dir.glob("*.log")}
    assert set(re.findall(r"`(\w+\.log)`", listed)) == logs

    run = result["run"]
    assert run.state.is_completed(), f"{run.state}\n{worker_log}"
    assert run.name == "daily-forecast-2020-12-11-stocks-sample"
    assert run.parameters["settings"]["watchlist"] == "deployments/watchlists/stocks.yaml"
    assert run.parameters["settings"]["tickers"] == ["QQQ"]
    assert run.parameters["settings"]["task_runner"] == "processes"
    assert "forecast-QQQ-2020-12-11" in result["task_runs"]
    assert "fetch-QQQ-2020-12-11" in result["task_runs"]
    assert "publish-artifacts-stocks" in result["task_runs"]
    # The pool worker's Prefect log reached the worker's output, and none of TensorFlow's
    # lines did.
    assert "Task run 'forecast-QQQ-2020-12-11' - QQQ: " in worker_output, worker_log
    assert [line for line in worker_output.splitlines() if is_tensorflow_log_line(line)] == []

    metrics = result["artifacts"]["closecast-metrics-stocks"]
    assert metrics.type == "table"
    assert "QQQ" in str(metrics.data)
    summary = result["artifacts"]["closecast-summary-stocks"]
    assert summary.type == "markdown"
    assert "| QQQ | ok |" in summary.data
    assert "X-Amz-Signature" in summary.data or "Signature=" in summary.data  # presigned

    bucket, prefix = s3_root.removeprefix("s3://").split("/", 1)
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert f"{prefix}/metrics/run_date=2020-12-11/watchlist=stocks/metrics.parquet" in keys

    deployments = result["deployments"]
    stocks, crypto, retrain = (
        deployments[n] for n in ("stocks-daily", "crypto-daily", "weekly-retrain")
    )
    assert _cron(stocks) == {"default": ("30 17 * * 1-5", "America/New_York", {})}
    assert _cron(crypto) == {"default": ("30 0 * * *", "UTC", {})}
    wl = "deployments/watchlists"
    # A schedule's parameters replace the deployment's whole settings: each repeats them.
    retrain_settings = {"storage": config.storage, "source": "sample", "mode": "retrain"}
    assert _cron(retrain) == {
        "retrain-stocks": ("0 6 * * 6", "America/New_York",
                           {"settings": retrain_settings | {"watchlist": f"{wl}/stocks.yaml"}}),
        "retrain-crypto": ("0 6 * * 0", "America/New_York",
                           {"settings": retrain_settings | {"watchlist": f"{wl}/crypto.yaml"}}),
    }  # fmt: skip
    for deployment in deployments.values():
        assert deployment.work_pool_name == "closecast-process"
        assert deployment.entrypoint == "flows/daily_forecast.py:daily_forecast"
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
        assert deployment.pull_steps == [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $CLOSECAST_HOME }}"
                }
            }
        ]
        assert deployment.parameters["settings"]["storage"] == config.storage
        assert deployment.parameters["settings"]["source"] == "sample"
    assert stocks.parameters["settings"]["mode"] == crypto.parameters["settings"]["mode"] == "auto"
    assert crypto.parameters["settings"]["watchlist"] == "deployments/watchlists/crypto.yaml"
    assert retrain.parameters["settings"]["mode"] == "retrain"


@pytest.mark.parametrize("action", ["status", "down"])
def test_cli_when_nothing_runs(tmp_path, capsys, action):
    import argparse

    from closecast.commands import stack as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([action, "--state-dir", str(tmp_path), "--port", str(_free_port())])
    code = command.run(args)
    out = capsys.readouterr().out
    if action == "status":
        assert code == 1
        assert "not running" in out
    else:
        assert code == 0
        assert "stopped 0 process" in out
