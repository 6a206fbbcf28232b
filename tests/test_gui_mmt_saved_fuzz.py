"""MMT tab, "Show saved" on damaged entries: a seeded handful of the fuzz test's spoilings
(`test_fuzz_result_entries`) of each source result, shown through the tab's worker, give the
tab's message naming the file, the entry and the field spoiled (a spoiling no result holds
always so), or show the result where the damage is harmless; never another exception, and the
file is left as it was."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
from test_fuzz_result_entries import _harmful, _mutations, sources  # noqa: F401 (a fixture)
from test_gui_mmt_saved import open_saved

SEED = 20261207
HARMFUL, OTHERS = 3, 2  # per source, drawn from those that must be refused and the others


def test_show_saved_names_the_damaged_field_and_leaves_the_file(
        qtbot, sources: dict[str, tuple[Path, str]],  # noqa: F811 (the fixture imported)
        tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    failures, outcomes = [], {"refused": 0, "shown": 0}
    for source, (path, entry) in sources.items():
        walked, special = _mutations(path, entry)
        offered = walked + special
        must = [m for m in offered if _harmful(source, m.label)]
        rest = [m for m in offered if not _harmful(source, m.label)]
        chosen = ([must[i] for i in rng.permutation(len(must))[:HARMFUL]]
                  + [rest[i] for i in rng.permutation(len(rest))[:OTHERS]])
        for j, m in enumerate(chosen):
            spoilt = tmp_path / f"{source}_{j}.h5"
            shutil.copy(path, spoilt)
            with h5py.File(spoilt, "a") as f:
                m.spoil(f[entry])
            before = hashlib.sha256(spoilt.read_bytes()).hexdigest()
            view, (ok, text) = open_saved(qtbot, spoilt, entry)
            problems = []
            if ok:
                outcomes["shown"] += 1
                if _harmful(source, m.label):
                    problems.append("shown, not refused")
            else:
                outcomes["refused"] += 1
                said = text.removeprefix("Saved result not shown: ")
                if said == text or re.match(r"\w+\(", said):  # an exception's repr: not ours
                    problems.append("not the tab's message")
                if not (str(spoilt) in text
                        and f"entry '{entry}'" in text and "expected" in text
                        and any(n in text for n in m.names)):
                    problems.append(f"not the message naming one of {m.names}")
                if view.result is not None:
                    problems.append("a result shown")
            if "Traceback" in text:
                problems.append("a traceback")
            if hashlib.sha256(spoilt.read_bytes()).hexdigest() != before:
                problems.append("the file changed")
            print(f"[{source}] {m.label}: {'shown' if ok else 'refused'}")
            if problems:
                failures.append(f"[{source}] {m.label}: {'; '.join(problems)}: {text}")
    print(outcomes)
    assert outcomes["refused"] >= HARMFUL * len(sources)
    assert not failures, "\n".join(failures)
