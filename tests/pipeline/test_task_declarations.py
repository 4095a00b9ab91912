"""How the tasks are declared: no task result is cached by its inputs."""

from __future__ import annotations

import importlib

import pytest
from prefect import Task
from prefect.cache_policies import NO_CACHE


@pytest.mark.parametrize("module", ["tasks.modelling", "tasks.prices", "tasks.publishing"])
def test_no_task_caches_its_result_by_its_inputs(module: str) -> None:
    """Every task reads or writes storage: a cached result would skip work, and computing
    the key hashes every input (a run's rows at 500 tickers)."""
    declared = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, Task)]
    assert declared
    assert [t.name for t in declared if t.cache_policy != NO_CACHE] == []
