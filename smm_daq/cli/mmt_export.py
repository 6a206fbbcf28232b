"""`smm-daq mmt export`: a saved MMT result back out of its session file, as the files
`mmt invert` writes at inversion time (--out's per-grain CSV, --library-out's NPZ), byte for
byte the same for the same result."""

from __future__ import annotations

import argparse

from smm_daq.cli.args import distinct_outputs, entry_to_read, output_file, outputs_apart
from smm_daq.errors import InputError


def _export(args: argparse.Namespace) -> int:
    from smm_daq.analysis.mmt.formats.mpe import write_library_results
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.result_file import write_result_csv
    from smm_daq.analysis.mmt.result_read import read_result_entry
    from smm_daq.analysis.mmt.solver.joint import as_points

    if args.csv is None and args.library_out is None:
        raise InputError("nothing to export; expected --csv OUT.csv and/or --library-out "
                         "OUT.npz")
    outputs = (("--csv", args.csv), ("--library-out", args.library_out))
    distinct_outputs(*outputs)
    outputs_apart(outputs, (("FILE.h5", args.file),))
    csv_path = output_file("--csv", args.csv, overwrite=args.overwrite) if args.csv else None
    npz_path = (output_file("--library-out", args.library_out, overwrite=args.overwrite)
                if args.library_out else None)
    saved = read_result_entry(args.file, args.entry)  # not an MMT result: refused, saying so
    if npz_path is not None and saved.model == "cuboid":
        raise InputError(f"--library-out: entry '{args.entry}' of {args.file} is a result of "
                         "the cuboid model, which the multipole library has no convention "
                         "for; expected a result of --model dipole, quadrupole or octupole: "
                         "nothing was written")
    if npz_path is not None and (saved.coefficients is None
                                 or saved.coefficient_covariance is None):
        raise InputError(f"--library-out: entry '{args.entry}' of {args.file}, a result of "
                         f"the {saved.model} model, holds no coefficients and their "
                         "covariance (results/coefficients, results/coefficient_covariance); "
                         "expected both, as mmt invert stores them: nothing was written")
    if csv_path is not None:
        write_result_csv(csv_path, saved.table)
        print(f"wrote {csv_path}: {len(saved.table['grain'])} grains of entry "
              f"'{args.entry}'")
    if npz_path is not None:
        grains = (saved.grains if isinstance(saved.grains, PointGrains)
                  else as_points(saved.grains))  # type: ignore[arg-type]
        write_library_results(npz_path, saved.coefficients,  # type: ignore[arg-type]
                              saved.coefficient_covariance, grains)  # type: ignore[arg-type]
        print(f"wrote {npz_path}: the {saved.model} results of entry '{args.entry}' in the "
              "multipole library's convention")
    return 0


def add_export_command(mmt_sub: argparse._SubParsersAction) -> None:
    """Add `mmt export`."""
    p = mmt_sub.add_parser(
        "export", help="a saved result's per-grain CSV or multipole-library NPZ",
        description="Write a saved MMT result (an entry of kind mmt) out again: the per-grain "
                    "CSV that mmt invert --out writes, and for point models the NPZ that "
                    "--library-out writes; the same bytes as at inversion time.")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.add_argument("--entry", required=True, type=entry_to_read,
                   help="the MMT result entry (mmt invert's --result-entry, default ENTRY_mmt)")
    p.add_argument("--csv", metavar="OUT.csv",
                   help="per-grain table: every column of mmt invert --out, higher-order "
                        "coefficients included")
    p.add_argument("--library-out", metavar="OUT.npz",
                   help="point models: the results in the multipole library's convention "
                        "(inv_multipole_moments, inv_moments_std)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_export)
