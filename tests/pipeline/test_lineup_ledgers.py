"""Every line-up model's ledger of a ticker is one object: read with one request, written
whole (a model left out of a run keeps its rows), read from a store that kept one object per
model, and set aside when unreadable."""

from __future__ import annotations

from datetime import date, timedelta

from closecast.outputs import catalog
from closecast.outputs.records import ServedRow, rows_to_table
from closecast.pipeline import live
from closecast.storage import open_storage
from closecast.storage.io import write_parquet

DAY = date(2020, 12, 1)


def rows(model: str, n: int, *, scored: int = 0) -> tuple[ServedRow, ...]:
    made = []
    for i in range(n):
        target = DAY + timedelta(days=i + 1)
        before = target - timedelta(days=1)
        row = ServedRow(
            ticker="T", target_date=target, data_end=before, forecast=100.0 + i, naive=99.0 + i,
            model_version=model, lineage=model, trained_through=before, served_on=before,
            model=model, actual=101.0 + i if i < scored else None,
        )  # fmt: skip
        made.append(row)
    return tuple(made)


class Counted:
    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return counted


def test_one_object_holds_every_line_up_ledger_and_keeps_the_models_left_out(tmp_path):
    storage = open_storage(str(tmp_path))
    ledgers = {
        "naive": live.Ledger(rows("naive", 3, scored=2)),
        "global_ar": live.Ledger(rows("global_ar", 2)),
    }
    key = live.write_lineup_ledgers(storage, "T", ledgers)
    assert key == catalog.lineup_ledgers_key("T") == catalog.served_key("T", "drift")
    assert storage.list_keys(catalog.served_prefix("T")) == [key]

    counted = Counted(storage)
    read = live.read_lineup_ledgers(counted, "T")
    assert counted.calls == ["read_bytes"]  # every model's ledger in one request
    assert read.by_model == ledgers and read.warning is None
    assert live.read_ledger(storage, "T", "naive") == ledgers["naive"]
    assert live.read_ledger(storage, "T", "drift") == live.Ledger(rows=())

    # One model's ledger written alone replaces its rows and keeps the others'.
    live.write_ledger(storage, "T", live.Ledger(rows("drift", 1)), "drift")
    again = live.read_lineup_ledgers(storage, "T").by_model
    assert again == {**ledgers, "drift": live.Ledger(rows("drift", 1))}
    # The LSTM's ledger stays its own object, the live record readers query.
    live.write_ledger(storage, "T", live.Ledger(rows("lstm", 2)))
    assert live.read_lineup_ledgers(storage, "T").by_model == again
    assert live.read_ledger(storage, "T").rows == rows("lstm", 2)


def test_a_store_with_one_object_per_model_is_read_into_it(tmp_path):
    storage = open_storage(str(tmp_path))
    prefix = catalog.served_prefix("T")
    for model in ("naive", "global_lstm"):  # as runs before the shared object stored them
        write_parquet(storage, f"{prefix}{model}.parquet", rows_to_table(rows(model, 2), ServedRow))
    live.write_ledger(storage, "T", live.Ledger(rows("lstm", 4)))

    read = live.read_lineup_ledgers(storage, "T")
    assert set(read.by_model) == {"naive", "global_lstm"}  # not the LSTM's own ledger
    assert read.by_model["naive"].rows == rows("naive", 2)
    live.write_lineup_ledgers(storage, "T", read.by_model)
    counted = Counted(storage)
    assert live.read_lineup_ledgers(counted, "T") == read
    assert counted.calls == ["read_bytes"]  # from now on, no listing


def test_an_unreadable_line_up_object_is_set_aside_and_every_record_restarts(tmp_path):
    storage = open_storage(str(tmp_path))
    key = catalog.lineup_ledgers_key("T")
    storage.write_bytes(key, b"not parquet")
    read = live.read_lineup_ledgers(storage, "T")
    assert read.by_model == {} and "unreadable" in read.warning
    assert "unreadable" in live.read_ledger(storage, "T", "naive").warning
    assert storage.read_bytes(f"{key}.unreadable-1") == b"not parquet"
