"""Independent storage requests sent together, a bounded number at a time."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

REQUESTS_IN_FLIGHT = 8
"""Storage requests in flight at once. Independent requests (a run's tables, a model
version's files, the tickers' prices and ledgers read by the pooled step, removals) go out
together: on S3 each costs a network round trip (10-50 ms), and boto3 clients are
thread-safe. Bounded, so a big run never opens hundreds of connections."""

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def concurrently(
    work: Callable[[_Item], _Result], items: Iterable[_Item], threads: int = REQUESTS_IN_FLIGHT
) -> list[_Result]:
    """``[work(item) for item in items]``, at most ``threads`` at a time, in order; the first
    error is raised once the others have finished (nothing is left running). Each call runs
    in a copy of the caller's context (its Prefect run, for logs), as it would inline."""
    items = list(items)
    if len(items) <= 1 or threads <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
    return [future.result() for future in futures]
