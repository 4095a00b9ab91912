"""The retention policy's settings (:class:`RetentionPolicy`), apart from
:mod:`closecast.outputs.retention`, which applies it.

``closecast gc``'s options take their defaults from here while the command line is built for
any subcommand, including ``run`` and ``replay``: importing the collector there (the pooled
step, the live record, SciPy) delayed their Prefect server's start by about as long.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetentionPolicy:
    """What ``closecast gc`` keeps (see :mod:`closecast.outputs.retention`).

    Attributes:
        keep_versions: The last this many model versions of each ticker (at least 1: the
            latest version is always kept, a run's next version is numbered after it).
        manifest_days: Everything a manifest of a run date within this many days of the
            collection date lists is kept, as are those scopes' plots and predictions.
    """

    keep_versions: int = 3
    manifest_days: int = 7

    def __post_init__(self) -> None:
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be at least 1, got {self.keep_versions}")
        if self.manifest_days < 0:
            raise ValueError(f"manifest_days must be at least 0, got {self.manifest_days}")
