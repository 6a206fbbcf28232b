"""Where each object of a file being rebuilt went in its copy, for what points at objects.

A rebuild (`smm_daq.storage.h5file._rebuild`) writes every object anew, so each lies at
another address in the copy. Two things of a file address its objects:

- a dataset or attribute of a named (committed) datatype links to that type: its copy is
  made with the type committed in the copy (`file_type`), so it links to it as it did, not
  to an equal type of its own. A type used before its own name is reached is committed
  at once under a scratch name in the copy's root, linked under its names as they are
  reached (`commit`), and that scratch name removed at the end (`finish`);
- an HDF5 reference (an object or a dataset-region one, also in a record or an array: a
  NeXus link that NeXpy makes, h5py's `ref_dtype`) holds the address of the object it
  points at: its values are written last (`later`, `finish`), once every object they
  may point at is copied, each pointing at the copy of the object it pointed at, a region
  reference with the same selection. A null reference stays null.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import h5py
import numpy as np
from h5py import h5o, h5r, h5t

from smm_daq.errors import InputError
from smm_daq.storage.copying import oldest_type

# makes the references among values read from the object named point at the copied objects
Remap = Callable[[np.ndarray, str], None]
_SCRATCH = ".smm-daq-committed-type-{}"  # a named type's name in the copy until its own


def _address(oid: h5py.h5o.ObjectID | h5py.h5t.TypeID) -> tuple[int, int]:
    """Which object of which open file `oid` is: equal types compare equal as TypeIDs, and
    two named types of one file may be equal."""
    info = h5o.get_info(oid)
    return info.fileno, info.addr


class Relinks:
    """What a rebuild of the group `src` into `dst` (each a file's root) copied where, and
    what it writes last. `source`: the file named in a refusal."""

    def __init__(self, src: h5py.Group, dst: h5py.Group, *, source: str) -> None:
        self._src, self._dst, self._source = src, dst, source
        self._made: dict[tuple[int, int], str] = {_address(src.file["/"].id): dst.name}
        self._scratch: set[str] = set()
        self._later: list[Callable[[Remap], None]] = []
        self._refs: dict[str, h5r.Reference] = {}  # a reference to each copy, by its name
        # a region reference to each copy and selection (each takes an object of the copy's
        # heap: one for each value pointing at it, a region pointed at many times took more
        # room than its file holds, past the room reserved for the copy)
        self._regions: dict[tuple[str, bytes], h5r.RegionReference] = {}

    def copied(self, obj: h5py.HLObject) -> str | None:
        """The name of `obj`'s copy, where one was linked under a name of its own."""
        name = self._made.get(_address(obj.id))
        return None if name in self._scratch else name

    def made(self, obj: h5py.HLObject, copy: h5py.HLObject) -> None:
        """`copy` is `obj`'s copy (under another name of `obj`, it is linked there)."""
        self._made[_address(obj.id)] = copy.name

    def file_type(self, ftype: h5t.TypeID) -> h5t.TypeID:
        """The type to make the copy of a dataset or attribute of `ftype` with: where `ftype`
        is a named type, that type's copy (committed now where it is not yet), else `ftype`
        in the oldest encoding that describes it (`copying.oldest_type`)."""
        if not ftype.committed():
            return oldest_type(ftype)
        key = _address(ftype)
        if key not in self._made:
            name = next(name for name in map(_SCRATCH.format, itertools.count())
                        if name not in self._src.file["/"] and f"/{name}" not in self._scratch)
            oldest_type(ftype).commit(self._dst.file.id, name.encode())
            self._made[key] = f"/{name}"
            self._scratch.add(f"/{name}")
        return self._dst.file[self._made[key]].id

    def commit(self, src: h5py.Datatype, dst: h5py.Group, name: str) -> h5py.Datatype:
        """The named type `src` committed as `dst`[`name`], in the oldest encoding that
        describes it; not its attributes. Where a dataset or attribute used it before, the
        type committed for it then is linked there."""
        scratch = self._made.get(_address(src.id))
        if scratch is None:
            oldest_type(src.id).commit(dst.id, name.encode())
        else:
            dst[name] = self._dst.file[scratch]
        self.made(src, dst[name])
        return dst[name]

    def later(self, write: Callable[[Remap], None]) -> None:
        """`write` called by `finish`, given what makes the references it writes point at
        the copied objects."""
        self._later.append(write)

    def finish(self) -> None:
        """The values holding references written, each pointing at the copy of what it
        pointed at, and the scratch names of named types removed (a type that nothing
        names any more stays, for what uses it)."""
        for write in self._later:
            write(self._remap)
        for name in self._scratch:
            del self._dst.file[name]

    def _remap(self, values: np.ndarray, where: str) -> None:
        """The references among `values` (read from `where`) made to point at the copies
        of the objects they point at, in place."""
        if values.dtype.names is not None:
            for field in values.dtype.names:
                self._remap(values[field], where)
            return
        if h5py.check_ref_dtype(values.dtype) is None:
            return
        for index, ref in np.ndenumerate(values):
            if ref:
                values[index] = self._pointed_anew(ref, where)

    def _pointed_anew(self, ref: h5r.Reference, where: str) -> h5r.Reference:
        """`ref`, not null, pointing at the copy of what it points at, with the same
        selection where it is a region reference."""
        try:
            target = self._src.file[ref]
        except (KeyError, ValueError, RuntimeError, OSError):
            target = None
        name = self._made.get(_address(target.id)) if target is not None else None
        if name is None:
            raise InputError(
                f"{where} holds an HDF5 reference to an object that is no longer in the file "
                "(its last name was removed, or its space reused), which its rebuilt copy "
                "could not point at; expected references to objects of the file: it is left "
                "as it was, copy what it needs with an HDF5 tool", source=self._source)
        if isinstance(ref, h5r.RegionReference):
            region = h5r.get_region(ref, target.id)
            key = (name, region.encode())
            if key not in self._regions:
                self._regions[key] = h5r.create(self._dst.file.id, name.encode(),
                                                h5r.DATASET_REGION, region)
            return self._regions[key]
        if name not in self._refs:
            self._refs[name] = self._dst.file[name].ref
        return self._refs[name]
