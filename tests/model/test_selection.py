"""The auto policy serves a model only when it beats naive with evidence."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_model.selection import select_model
from lstm_model.significance import diebold_mariano

RNG = np.random.default_rng(9)
ACTUAL = RNG.normal(0, 1, 200)
NAIVE = ACTUAL + RNG.normal(0, 1, 200)


def _test(scale: float, n: int = 200):
    predicted = ACTUAL + scale * RNG.normal(0, 1, 200)
    return diebold_mariano(ACTUAL[:n], predicted[:n], NAIVE[:n])


def test_the_best_model_that_beats_naive_with_evidence_is_served() -> None:
    candidates = {
        "naive": diebold_mariano(ACTUAL, NAIVE, NAIVE),
        "lstm": _test(0.6),
        "drift": _test(0.4),
        "seasonal_naive": _test(1.5),
    }
    selection = select_model(candidates)
    assert selection.kind == "drift"
    assert selection.reason.startswith("auto: drift beats naive with evidence (U2 0.")
    assert "smallest backtest error of 2 that do" in selection.reason


def test_without_evidence_naive_is_served_and_the_reason_says_so() -> None:
    candidates = {"naive": diebold_mariano(ACTUAL, NAIVE, NAIVE), "lstm": _test(0.99)}
    assert candidates["lstm"].p_value > 0.025
    selection = select_model(candidates)
    assert selection.kind == "naive"
    assert selection.reason.startswith("auto: no model beats naive with evidence (best ")


def test_candidates_must_be_scored_on_the_same_days() -> None:
    with pytest.raises(ValueError, match="different numbers of days: \\[100, 200\\]"):
        select_model({"lstm": _test(0.5), "drift": _test(0.5, n=100)})
    with pytest.raises(ValueError, match="at least one candidate"):
        select_model({})
