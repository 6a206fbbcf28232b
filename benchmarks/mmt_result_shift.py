"""How far two `smm-daq mmt invert` result CSVs of the same grains lie apart, in units of the
first one's standard deviations (e.g. a result from an earlier version, then this one's):

    python benchmarks/mmt_result_shift.py REFERENCE.csv RESULT.csv [--limit 0.01]

Prints the largest and median |M̂ − M̂_ref| / SD_ref over grains and axes (grains with an
infinite or zero SD left out), the grain with the largest shift, the largest relative change
of an SD, and exits with status 1 when the largest shift exceeds --limit.
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

AXES = ("mx_A_per_m", "my_A_per_m", "mz_A_per_m")


def _read(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    m = np.array([[float(r[k]) for k in AXES] for r in rows])
    sd = np.array([[float(r["sd_" + k]) for k in AXES] for r in rows])
    return [r["grain"] for r in rows], m, sd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference")
    parser.add_argument("result")
    parser.add_argument("--limit", type=float, default=0.01,
                        help="largest shift allowed, in reference SDs (default 0.01)")
    args = parser.parse_args()
    labels, m_ref, sd_ref = _read(args.reference)
    labels_new, m_new, sd_new = _read(args.result)
    if labels != labels_new:
        sys.exit("the two files do not list the same grains in the same order")
    ok = np.isfinite(sd_ref) & (sd_ref > 0)
    shift = np.where(ok, np.abs(m_new - m_ref) / np.where(ok, sd_ref, 1.0), 0.0)
    worst = int(np.argmax(shift.max(axis=1)))
    print(f"{len(labels)} grains; largest |ΔM| / SD {shift.max():.3g} (grain {labels[worst]}), "
          f"median {np.median(shift[ok]):.3g}; largest relative change of an SD "
          f"{np.max(np.abs(sd_new - sd_ref)[ok] / sd_ref[ok]):.3g}")
    return 0 if shift.max() <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
