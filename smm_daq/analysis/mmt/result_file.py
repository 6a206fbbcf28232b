"""Writing an MMT result: the per-grain CSV and a new entry in the session file.

The command line and the window both save through here, so a result saved from either is
the same: the CSV's columns (unit-suffixed, one row a grain) and an entry of kind "mmt"
holding the residual map, the per-grain table, the covariances, the fitted map and how the
result was made.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.solver.inversion import MMTResult
from smm_daq.storage.nexus import write_map_entry


def write_result_csv(path: str | Path, table: dict[str, np.ndarray]) -> None:
    names = list(table)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(names)
        for i in range(len(table["grain"])):
            out.writerow([int(table[k][i]) if k == "grain" else f"{float(table[k][i]):.9g}"
                          for k in names])


def result_extra(result: MMTResult, table: dict[str, np.ndarray], args_text: str
                 ) -> dict[str, object]:
    """The per-grain table and the fitted map under the result entry ('results/...')."""
    extra: dict[str, object] = {f"results/{k}": np.asarray(v, dtype=float)
                                for k, v in table.items()}
    extra["results/grain"] = np.asarray(result.grains.labels, dtype=np.int64)
    extra["results/covariance_A2_per_m2"] = result.covariance
    extra["results/sigma_T"] = result.sigma
    extra["results/sigma_from_residual"] = int(result.sigma_from_residual)
    extra["results/condition_number"] = result.condition_number
    extra["results/damping"] = result.damping
    extra["results/n_sensors"] = result.n_sensors
    extra["fitted/Bz"] = result.fitted.bz
    extra["results/command"] = args_text
    return extra


def write_result_entry(path: str | Path, name: str, source: str, result: MMTResult,
                       table: dict[str, np.ndarray], how: str, *, overwrite: bool = False
                       ) -> str:
    """The result as entry `name` of the session file, its map the residual of the entry
    `source` that was inverted; `how` says how it was made (the command line, or the
    window's settings)."""
    residual = result.residual.with_bz(result.residual.bz, name=name, sources=(source,),
                                       title=f"MMT residual of {source}")
    return write_map_entry(path, residual, kind="mmt", extra=result_extra(result, table, how),
                           overwrite=overwrite)
