"""docs/model.md's list of the ``meta.json`` fields is what a saved model's ``meta.json``
holds: every field a fit writes, the validation scores, and a fine-tune's record."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"


def _documented() -> dict[str, set[str]]:
    """The field names of each sentence of docs/model.md's ``meta.json`` paragraph."""
    text = DOC.read_text(encoding="utf-8")
    paragraph = text[text.index("`meta.json`. Every fit writes") :].split("\n\n", 1)[0]
    sentences = {
        "fit": r"Every fit writes (.*?)\. A fit with",
        "validation": r"adds its first day and its scores there:(.*?)\. Each",
        "fine_tune": r"appends to `fine_tunes` a record of(.*?)\. A refit",
    }
    return {
        name: set(re.findall(r"`([a-z_0-9]+)`", re.search(pattern, paragraph, re.S).group(1)))
        for name, pattern in sentences.items()
    }


def test_meta_json_holds_the_fields_the_docs_list(fast_model, random_walk, tmp_path) -> None:
    documented = _documented()
    fast_model.save(tmp_path / "fit")
    written = set(json.loads((tmp_path / "fit" / "meta.json").read_text(encoding="utf-8")))
    validation = {name for name in written if name.startswith("val_")}
    assert fast_model.meta["n_val"] > 0  # the fit had a validation slice
    assert documented["fit"] == written - validation
    assert documented["validation"] == validation

    tuned = fast_model.fine_tune(
        random_walk.iloc[:310], random_walk.index[300], epochs=1, learning_rate=1e-3
    )
    tuned.save(tmp_path / "tuned")
    meta = json.loads((tmp_path / "tuned" / "meta.json").read_text(encoding="utf-8"))
    (record,) = meta["fine_tunes"]
    assert documented["fine_tune"] == set(record)
