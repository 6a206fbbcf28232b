"""Fuzzing `smm-daq export`'s options across the kinds of entry it reads (scans, an induced
map, susceptibility and magnetization models, a joint MMT result of scans of two shapes, the
same result as written before layout version 3 with a scan since deleted, an optical image)
and names of no entry: --dataset, --csv, --png, --mask-template (once, or one per --entry),
--overwrite, in valid and malformed combinations. Every run must end with exit 0 or 2 and no
traceback, leave the session file as it was, and on exit 2 say in one line what it expected
and write nothing (`fuzz_harness`). Every entry is tried with every dataset and a CSV (each
name of no entry with three: it is refused before a dataset is looked up; the second scan,
'side', with none: its datasets are looked up as the first's); a seeded sample of them with
each other output, one of each kind of entry (few with a PNG figure: each takes a tenth of a
second); the counts are printed (pytest -s).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from export_session import write_export_session
from fuzz_harness import Case, run_all
from test_gui_mmt_saved import as_written_before_version_3

ENTRIES = {  # entry -> its kind, for the counts
    "low": "scan", "side": "scan", "induced": "induced", "chi": "model", "mag": "model",
    "joint": "MMT result", "optical": "optical image",
    **dict.fromkeys(["", "/", ".", "..", "//", "low/data", "/low", "nowhere", " low"],
                    "no entry"),
}
DATASETS = [None, "", "Bz", "data/Bz", "fitted/Bz", "chi/chi", "chi/errors",
            "residual/residual", "magnetization/M", "results/chi_SI", "results/M_A_per_m",
            "scans/low/residual_Bz", "scans/high/fitted_Bz", "scans/side/residual_Bz",
            "scans/side/mask", "scans/nowhere/fitted_Bz", "scans/side", "/", "/low/data/Bz",
            "../low/data/Bz", "data", "data/x", "data/image", "results/coefficients",
            "results/covariance", "grains/x", "title"]
NO_ENTRY_DATASETS = (None, "data/Bz", "scans/side/mask")  # none, a scan's, a result's
PER_KIND = 1  # (entry, dataset) pairs of each kind tried with each output but --csv and --png
CSV_REPEATS = {"side"}  # a second entry of a kind, of another shape: left out of the --csv pass
PNG_SAMPLE = 12


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The session, and a copy whose result is laid out as before version 3, scan 'high'
    deleted (its maps' grid known nowhere)."""
    tmp = tmp_path_factory.mktemp("export_fuzz")
    session = write_export_session(tmp)
    older = tmp / "older.h5"
    shutil.copy(session, older)
    as_written_before_version_3(older, "joint")
    with h5py.File(older, "a") as f:
        del f["high"]
    return session, older


def _outputs(tmp: Path, session: Path) -> list[tuple[str, list[str]]]:
    """(label, options) of what to write; the labels of those that may be valid start '+'."""
    csv, png, template = (str(tmp / n) for n in ("x.csv", "x.png", "t.png"))
    return [
        ("+csv", ["--csv", csv]),
        ("+template", ["--mask-template", template]),
        ("+csv and template, overwrite", ["--csv", csv, "--mask-template", template,
                                          "--overwrite"]),
        ("nothing to write", []),
        ("existing csv", ["--csv", str(tmp / "kept.csv")]),
        ("csv over the session", ["--csv", str(session), "--overwrite"]),
        ("csv in no folder", ["--csv", str(tmp / "none" / "x.csv")]),
        ("csv a folder", ["--csv", str(tmp)]),
        ("template not png", ["--mask-template", str(tmp / "t.tif")]),
        ("one file twice", ["--csv", png, "--mask-template", png]),
        ("two templates", ["--mask-template", template, "--mask-template", png]),
    ]


def _csv_pairs(pairs: list[tuple[Path, str, str | None]]) -> list[tuple[Path, str, str | None]]:
    """The pairs tried with --csv: every entry with every dataset, and each name of no entry
    with NO_ENTRY_DATASETS only. A name of no entry is refused by name before any dataset is
    looked up, with the same message whatever the dataset (each of the 27 checked), so the
    other datasets would run that one refusal again; so would a second scan (`CSV_REPEATS`),
    whose datasets are looked up as the first's whatever its shape. The sampled outputs still
    draw from every pair."""
    return [(path, entry, dataset) for path, entry, dataset in pairs
            if entry not in CSV_REPEATS
            and (ENTRIES[entry] != "no entry" or dataset in NO_ENTRY_DATASETS)]


def _kind(path: Path, entry: str, older: Path) -> str:
    return "older MMT result" if path == older else ENTRIES[entry]


def _sampled_per_kind(pairs: list[tuple[Path, str, str | None]], older: Path,
                      rng: np.random.Generator) -> list[tuple[Path, str, str | None]]:
    """PER_KIND pairs drawn of each kind of entry: every output is tried with every kind,
    the few of an entry read as the many names of no entry (a plain draw had some outputs
    never tried with an optical image or an induced map)."""
    kinds = [_kind(path, entry, older) for path, entry, _ in pairs]
    chosen = []
    for kind in dict.fromkeys(kinds):
        of_kind = [i for i, k in enumerate(kinds) if k == kind]
        chosen += [pairs[i] for i in sorted(rng.choice(of_kind, PER_KIND, replace=False))]
    return chosen


def _cases(tmp: Path, session: Path, older: Path) -> Iterator[Case]:
    (tmp / "kept.csv").write_text("the user's\n")
    watched = [session, older, tmp / "kept.csv"]
    written = [tmp / n for n in ("x.csv", "x.png", "t.png", "t.tif")]
    pairs = [(path, entry, dataset)
             for path, entries in ((session, ENTRIES), (older, ["joint"]))
             for entry in entries for dataset in DATASETS]
    rng = np.random.default_rng(11)
    outputs = _outputs(tmp, session)
    for label, options in [*outputs, ("+png", ["--png", str(tmp / "x.png")])]:
        if label == "+csv":
            chosen = _csv_pairs(pairs)
        elif label == "+png":
            chosen = [pairs[i] for i in rng.choice(len(pairs), PNG_SAMPLE, replace=False)]
        else:
            chosen = _sampled_per_kind(pairs, older, rng)
        for path, entry, dataset in chosen:
            kind = _kind(path, entry, older)
            argv = ["export", str(path), f"--entry={entry}",
                    *([] if dataset is None else [f"--dataset={dataset}"]), *options]
            yield Case(kind, f"{entry!r} {dataset!r} {label}", argv, watched, written,
                       may_pass=label.startswith("+"))
    images = [str(tmp / "t.png"), str(tmp / "x.png")]
    for entries in (["low", "side"], ["low", "joint"], ["low", "optical"], ["low", "low"],
                    ["low", "/"], ["side", "nowhere"]):
        argv = ["export", str(session), *(f"--entry={e}" for e in entries)]
        for label, options in (
                ("+a template each", [f"--mask-template={t}" for t in images]),
                ("one template", [f"--mask-template={images[0]}"]),
                ("one file for both", [f"--mask-template={images[0]}"] * 2),
                ("and a csv", [*(f"--mask-template={t}" for t in images),
                               f"--csv={tmp / 'x.csv'}"]),
                ("and a dataset", [*(f"--mask-template={t}" for t in images),
                                   "--dataset=fitted/Bz"])):
            yield Case("several entries", f"{entries} {label}", [*argv, *options], watched,
                       written, may_pass=label.startswith("+"))


def test_export_options_across_entry_kinds_run_or_are_refused_cleanly(
        tmp_path: Path, files: tuple[Path, Path]) -> None:
    counts, failures = run_all(_cases(tmp_path, *files))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
