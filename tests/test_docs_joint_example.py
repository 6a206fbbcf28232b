"""The joint MMT example of README.md and docs/mmt-models.md runs as written on the files it
names (`J=tests/data/mpe-joint`, from the repository's root) and finds what they hold.

Each doc's code block is read from its `J=` line on, and each `smm-daq` line of it is run
through the command line's `main` in process, in a temporary folder (the outputs' only
change: where they land). The result must hold both scans with their own heights and masks,
the grains of the scans (not the CT's specks nor the grain beyond the scan), and each grain's
magnetization and quadrupole within a few of the SDs the inversion gives (truth.csv holds what
the fixtures were made of).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from test_docs_commands import _joined

from smm_daq.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = {"README.md": ROOT / "README.md", "mmt-models.md": ROOT / "docs" / "mmt-models.md"}


def _example(doc: Path) -> tuple[Path, list[list[str]]]:
    """The fixture folder the doc's `J=` names and the words of each `smm-daq` line after it in
    its code block, `$J` replaced by that folder."""
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", doc.read_text(), re.S):
        lines = [line.split(" #")[0].strip() for line in _joined(block).splitlines()]
        for i, line in enumerate(lines):
            if match := re.fullmatch(r"J=(\S+)", line):
                folder = ROOT / match.group(1)
                return folder, [[w.replace("$J", str(folder)) for w in shlex.split(rest)][1:]
                                for rest in lines[i + 1:] if rest.startswith("smm-daq ")]
    raise AssertionError(f"{doc.name} has no code block that sets J=")


def _z_scores(result_csv: Path, truth_csv: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels found, labels made, and (grain, coefficient) (estimate − truth) / SD."""
    result = np.genfromtxt(result_csv, delimiter=",", names=True)
    truth = np.genfromtxt(truth_csv, delimiter=",", names=True)
    columns = [c for c in truth.dtype.names if c.endswith(("_A_per_m", "_Am3"))]
    missing = [c for c in columns if c not in result.dtype.names]
    assert not missing, f"{result_csv.name} has no {missing}: not the model the grains need"
    row = {int(g): i for i, g in enumerate(result["grain"])}
    z = np.array([[(result[c][row[int(g)]] - truth[c][k]) / result[f"sd_{c}"][row[int(g)]]
                   for c in columns] for k, g in enumerate(truth["grain"]) if int(g) in row])
    return np.sort(result["grain"]), np.sort(truth["grain"]), z


@pytest.mark.parametrize("doc", DOCS)
def test_the_joint_example_runs_as_written_and_recovers_the_grains(
        doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, commands = _example(DOCS[doc])
    monkeypatch.chdir(tmp_path)
    for words in commands:
        assert main(words) == 0, f"{doc}: smm-daq {shlex.join(words)}: {capsys.readouterr()}"
    err = capsys.readouterr().err
    assert "warning" not in err, f"{doc}: the example's options leave something warned of: {err}"

    parsed = [build_parser().parse_args(words) for words in commands]
    imports = {a.name: json.loads(Path(a.params).read_text())["Scan height Hz"]
               for a in parsed if a.command == "import"}
    (invert,) = [a for a in parsed if a.command == "mmt"]
    assert invert.entry == list(imports) == ["low", "high"]

    found, made, z = _z_scores(tmp_path / invert.out, folder / "truth.csv")
    assert np.array_equal(found, made), f"grains {found}; expected the scanned ones, {made}"
    within_3 = np.all(np.abs(z) < 3, axis=1)
    assert np.mean(within_3) >= 0.85, f"{doc}: grains beyond 3 SDs: {found[~within_3]}"
    assert np.mean(np.abs(z) < 2) >= 0.85, f"{doc}: z-scores {np.round(z, 1)}"

    painted = np.array(Image.open(invert.mask[0]).convert("L"))[::-1] < 128
    with h5py.File(tmp_path / invert.file, "r") as f:
        result = f[invert.result_entry or f"{invert.entry[0]}_mmt"]
        assert result["results/scans"][()].decode() == "low,high"
        for name, height in imports.items():
            scan = result["scans"][name]
            assert scan["height"][()] == pytest.approx(height)
            assert np.array_equal(scan["mask"][()].astype(bool), painted), \
                f"{doc}: scans/{name}/mask is not {invert.mask[0]}'s black pixels"
    assert painted.any()  # the dust spot and the glitch, painted black
