"""`smm-daq repair FILE`: make a session file left marked open-for-write by a killed writer
openable by every HDF5 reader again, and in the format HDF5 1.10 and later decode.

smm-daq's own commands do this on their next touch of such a file; this command is for a file
that is to be opened in other programs first, or that came from an older version of smm-daq.
It also removes the scratch files that writers killed on this machine left beside the file
(`.FILE.*.new`, `.FILE.*.repair-tmp`), naming each, and names those it keeps. An intact file
already in that format (`smm_daq.storage.intact`) is left as it is, and said to be. What writers
killed part-way left it finishes, leaves out or moves in (`smm_daq.storage.staging`), and says
which, each as it is: an entry cut off, or an overwrite cut off with the old entry as it was.
A file whose HDF5 global heap is damaged, which HDF5 would never return from reading, is
refused before HDF5 reads anything (`smm_daq.storage.global_heap`), and left as it is.
"""

from __future__ import annotations

import argparse


def _repair(args: argparse.Namespace) -> int:
    from smm_daq.storage.h5file import check_heaps, marked_open, remove_leftovers, repair
    from smm_daq.storage.intact import needs_repair
    from smm_daq.storage.staging import kept_note, left_out_note

    check_heaps(args.file)  # before `needs_repair` has HDF5 read the file
    if not needs_repair(args.file):
        removed, kept_files = remove_leftovers(args.file)
        print(f"{args.file}: intact and in the HDF5 1.10 format already: left as it is")
        for name in removed:
            print(f"removed {name}")
        for name in kept_files:
            print(f"kept {name}")
        return 0
    was_marked = marked_open(args.file)
    done = repair(args.file, only_ours=True)
    what = "cleared the open-for-write mark; " if was_marked else ""
    kept = ("every entry kept" if not done.left_out else "left out " + ", ".join(
        f"{'a write' if c.fixed else 'an overwrite'} of '{c.name}' ('{c.name}' kept as it was)"
        if c.kept else f"'{c.name}'"
        for c in done.left_out))  # each said on a line of its own below
    print(f"{args.file}: {what}rewritten in the HDF5 1.10 format, {kept}")
    for c in done.left_out:
        print(left_out_note(c, args.file))
    for c in done.moved_in:
        print(kept_note(c, moved_in=True))
    for c in done.held:
        print(kept_note(c, moved_in=False))
    for name in done.removed:
        print(f"removed {name}")
    for name in done.kept:
        print(f"kept {name}")
    if done.interrupted:
        print(f"{_names(done.interrupted)} now read{'s' if len(done.interrupted) == 1 else ''} "
              "'interrupted' (left running by a killed writer; `smm-daq resume FILE --entry "
              "NAME` finishes such a scan)")
    return 0


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `repair`."""
    about = "make a file left open by a stopped writer openable everywhere (HDF5 1.10 format)"
    p = sub.add_parser("repair", help=about, description=about[0].upper() + about[1:] + ".")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.set_defaults(func=_repair)
