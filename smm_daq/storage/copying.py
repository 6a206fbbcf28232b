"""Copying one dataset, or an object's attributes, into another file as it is, writing only
what its file holds.

A rebuild (`smm_daq.storage.h5file.repair`, `make_extendable`) copies every dataset of a file
into a fresh one. A dataset is made anew from its own creation properties (chunk shape,
filters, fill value, its file type byte for byte), so it reads back the same; then only its
stored data is copied:

- chunked: each chunk its file holds, raw (still compressed, its filter mask kept), so a
  chunk never written stays unwritten and reads as the fill value: a scan's lines not yet
  measured, or a dataset declaring terabytes over a few kB of chunks, cost what they hold;
- contiguous or compact: in blocks of at most `BLOCK_BYTES`, as raw bytes in the file's own
  type (nothing converted), and nothing where no storage was ever allocated;
- variable-length data (text of any length) is converted through memory, chunk by chunk
  where it is chunked (the chunks its file holds only, text that reads as the fill value left
  to it), else whole: a dataset that declares more than `TEXT_LIMIT` bytes of it, or
  fixed-length text larger than that, is refused (`InputError`) before anything is read, as
  no session file holds such text.

Attributes (`copy_attributes`) are made anew with their file type and dataspace, their values
copied as raw bytes of that type, or through memory unconverted where of variable length.

What points at objects of the file is pointed at their copies (`smm_daq.storage.relinking`):
a dataset or attribute of a named type is made with that type's copy, and references are
written last, each pointing at the copy of what it pointed at.

Allocation is never early in the copy (chunked: as chunks are written; contiguous: on the
first write), so a dataset never written stays unallocated, as it was.

What a copy writes beyond what its file holds is the index of each chunked dataset's chunks
in the 1.10 format (`index_room`), which can be far larger than the index it had: a file of
the oldest format indexes only the chunks stored, but the 1.10 copy of a dataset of fixed
size indexes every chunk its shape can hold as soon as one is stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

import h5py
import numpy as np
from h5py import h5, h5a, h5d, h5p, h5s, h5t, h5z

from smm_daq.errors import InputError

if TYPE_CHECKING:
    from smm_daq.storage.relinking import Relinks, Remap

BLOCK_BYTES = 32 << 20  # bytes read at once from a contiguous dataset
# a chunk of a 1-D dataset made extendable: at least as many elements as a scan's own logs
# have in a chunk (a log of a few runs fits one), at most those of 64 KiB (a long one is not
# split into chunks of 16, each an entry of its index and a read of its own)
EXTENDABLE_CHUNK = 16
EXTENDABLE_CHUNK_BYTES = 64 << 10
TEXT_LIMIT = 64 << 20  # bytes of text a dataset may declare; more is refused unread
_LAYOUTS = (h5d.CHUNKED, h5d.CONTIGUOUS, h5d.COMPACT)
_POINTER_BYTES = 16  # in-memory size of one variable-length element (a count and a pointer)


def copy_dataset(src: h5py.Dataset, dst: h5py.Group, name: str, *, source: str,
                 extendable: bool = False, relinks: Relinks | None = None) -> h5py.Dataset:
    """`src` copied as `dst`[`name`] (its data and creation properties; not its attributes).
    `extendable`: a contiguous 1-D `src` is made chunked and extendable along its axis.
    `relinks`: what the rebuild copied where: a dataset of a named type is made with that
    type's copy, and the values of one holding references are written last, pointing at
    the copied objects (`smm_daq.storage.relinking`). Without it, or where its references
    are of a kind not followed there, a dataset holding references is refused (`InputError`,
    naming the file `source`), as an attribute holding them is (`copy_attributes`)."""
    ftype = _file_type(src)
    references = bool(ftype.detect_class(h5t.REFERENCE))
    if references:
        _check_references(f"dataset '{src.name}'", ftype, relinks, source)
    converted = _needs_memory(ftype)
    if converted or ftype.get_class() == h5t.STRING:
        _check_text_size(src, ftype, source)
    dcpl = _creation_plist(src)
    _check_filters(src, source)
    space = src.id.get_space()
    layout = stored_as = dcpl.get_layout()
    if _made_extendable(src, extendable):
        dcpl.set_chunk((extendable_chunk(src),))
        space = h5s.create_simple(src.shape, (h5s.UNLIMITED,))
        layout = h5d.CHUNKED
    if layout == h5d.CHUNKED:
        dcpl.set_alloc_time(h5d.ALLOC_TIME_INCR)
    elif layout == h5d.CONTIGUOUS:
        dcpl.set_alloc_time(h5d.ALLOC_TIME_LATE)
    made_as = relinks.file_type(src.id.get_type()) if relinks is not None else ftype
    dst[name] = h5py.Dataset(h5d.create(dst.id, None, made_as, space, dcpl=dcpl))
    new = dst[name]
    if src.shape is None or (stored_as != h5d.COMPACT and src.id.get_storage_size() == 0):
        return new
    if references and relinks is not None:  # once every object they may point at is copied
        relinks.later(lambda remap: _copy_through_memory(src, new, remap))
    elif converted:
        _copy_through_memory(src, new)
    elif new.chunks is not None and new.chunks == src.chunks:
        for offset in allocated_chunks(src):
            copy_chunk(src.id, new.id, offset)
    else:
        for start, count in _blocks(src.shape, ftype.get_size()):
            _copy_block(src.id, new.id, ftype, start, count)
    return new


def _copy_through_memory(src: h5py.Dataset, new: h5py.Dataset,
                         remap: Remap | None = None) -> None:
    """The values of `src` written to `new` through memory, converted (`_needs_memory`):
    chunk by chunk, each chunk its file holds, where both have the same chunks, else whole;
    `remap` makes the references among them point at the copied objects."""
    if new.chunks is not None and new.chunks == src.chunks:
        for offset in allocated_chunks(src):
            region = tuple(slice(o, min(o + c, n))
                           for o, c, n in zip(offset, new.chunks, src.shape, strict=True))
            _copy_converted_chunk(src, new, region, remap)
        return
    # read and written whole, as HDF5 does it: h5py broadcasts sequences
    values, mtype = _memory_buffer(src.id.get_type(), src.shape)
    src.id.read(h5s.ALL, h5s.ALL, values, mtype=mtype)
    _in_file_order(values)
    if remap is not None:
        remap(values, f"dataset '{src.name}'")
    new.id.write(h5s.ALL, h5s.ALL, values, mtype=mtype)


def _check_references(what: str, ftype: h5t.TypeID, relinks: Relinks | None,
                      source: str) -> None:
    """InputError where the references in values of `ftype` (those of `what`) cannot be
    made to point at the copied objects (`_follows`)."""
    if relinks is not None and _follows(ftype):
        return
    raise InputError(
        f"{what} holds HDF5 references of a kind a repair cannot point at the copied "
        "objects (it follows object and dataset-region references, also in records and "
        "arrays); expected no other references in a session file: it is left as it was, "
        "copy what it needs with an HDF5 tool", source=source)


def _follows(ftype: h5t.TypeID) -> bool:
    """Whether a repair can make the references in values of `ftype` point at the copied
    objects: object and dataset-region references, also as members of records and in
    arrays; not in sequences of variable length, nor references of HDF5 1.12's newer kind."""
    kind = ftype.get_class()
    if kind == h5t.REFERENCE:
        return ftype in (h5t.STD_REF_OBJ, h5t.STD_REF_DSETREG)
    if kind == h5t.COMPOUND:
        return all(_follows(ftype.get_member_type(i)) for i in range(ftype.get_nmembers()))
    if kind == h5t.ARRAY:
        return _follows(ftype.get_super())
    if kind == h5t.VLEN:
        return not ftype.get_super().detect_class(h5t.REFERENCE)
    return True


def copy_attributes(src: h5py.HLObject, dst: h5py.HLObject, *, source: str,
                    relinks: Relinks | None = None) -> None:
    """Every attribute of `src` made anew on `dst` as its file holds it: its file type (text
    keeps its length, padding and character set; a named type is its copy, with `relinks`),
    its dataspace (scalar, simple or null: an empty attribute), and its values as raw bytes
    of that type; variable-length data (text of any length, sequences) through memory, its
    bytes unconverted: text is never decoded, so bytes that are not UTF-8 in ASCII text are
    copied as they are. Copied in the order `src` lists them (creation order where it tracks
    it). Values holding references are written last (`relinks.later`), pointing at the
    copied objects; without `relinks`, or references of a kind not followed, refused
    (`InputError`). `source`: the file named in a refusal."""
    holder = src["/"] if isinstance(src, h5py.File) else src  # a file's are its root group's
    tracked = holder.id.get_create_plist().get_attr_creation_order() & h5p.CRT_ORDER_TRACKED
    names: list[bytes] = []
    h5a.iterate(src.id, names.append,
                index_type=h5.INDEX_CRT_ORDER if tracked else h5.INDEX_NAME)
    for name in names:
        attr = h5a.open(src.id, name)
        ftype = oldest_type(attr.get_type())
        what = f"attribute '{name.decode(errors='replace')}' of '{src.name}'"
        references = bool(ftype.detect_class(h5t.REFERENCE))
        if references:
            _check_references(what, ftype, relinks, source)
        space = attr.get_space()
        made_as = relinks.file_type(attr.get_type()) if relinks is not None else ftype
        new = h5a.create(dst.id, name, made_as, space)
        if space.get_simple_extent_type() == h5s.NULL or space.get_simple_extent_npoints() == 0:
            continue
        if references and relinks is not None:
            relinks.later(lambda remap, attr=attr, new=new, what=what:
                          _copy_attribute(attr, new, remap, what))
        else:
            _copy_attribute(attr, new)


def _copy_attribute(attr: h5a.AttrID, new: h5a.AttrID, remap: Remap | None = None,
                    what: str = "") -> None:
    """The values of `attr` written to `new`: through memory where of variable length or
    holding references (`remap` makes those, of `what`, point at the copied objects), else
    as raw bytes of its file type."""
    ftype = oldest_type(attr.get_type())
    shape = attr.get_space().shape
    if _needs_memory(ftype):
        values, mtype = _memory_buffer(ftype, shape)
        attr.read(values, mtype=mtype)
        _in_file_order(values)
        if remap is not None:
            remap(values, what)
        new.write(values, mtype=mtype)
    else:
        raw = np.empty(shape, dtype=np.dtype((np.void, ftype.get_size())))
        attr.read(raw, mtype=ftype)
        new.write(raw, mtype=ftype)


def _memory_buffer(ftype: h5t.TypeID, shape: tuple[int, ...]
                   ) -> tuple[np.ndarray, h5t.TypeID]:
    """An array for values of `ftype` in `shape` read through memory, and its memory type:
    h5py's own conversion, text to bytes objects, undecoded."""
    dtype = ftype.dtype
    mtype = h5t.py_create(dtype)
    if dtype.subdtype is not None:  # numpy has no array element: its shape added
        dtype, inner = dtype.subdtype
        shape += inner
    return np.empty(shape, dtype=dtype), mtype


def _in_file_order(values: np.ndarray) -> None:
    """The sequences of numbers in `values` (variable-length data, also in records), as h5py
    reads them, typed in their file's byte order again: h5py reads a sequence of numbers of
    the other byte order as its bytes, unswapped, typed in this machine's order, and converts
    them by value when writing them, so that each number came back byte-swapped."""
    if values.dtype.names is not None:
        for field in values.dtype.names:
            _in_file_order(values[field])
        return
    base = h5py.check_vlen_dtype(values.dtype)
    if not isinstance(base, np.dtype) or base.isnative:  # none, or text (its type is str)
        return
    for index, sequence in np.ndenumerate(values):
        if isinstance(sequence, np.ndarray) and sequence.dtype.itemsize == base.itemsize:
            values[index] = sequence.view(base)


def _copy_converted_chunk(src: h5py.Dataset, new: h5py.Dataset, region: tuple[slice, ...],
                          remap: Remap | None = None) -> None:
    """The values of `src` in `region`, one chunk, written to `new` through memory: text that
    reads as the fill value is left to it (HDF5 fills a chunk written in part first), but for
    the chunk's first value, so that the chunk is stored as it was. Each text value written
    takes an object of the file's heap, an empty one too (16 bytes), where a value never
    written takes none: written whole, a compressed chunk of a few kB with few values written
    took megabytes, past the room reserved for the copy (its file's size and 4 MB). `remap`
    makes the references among them point at the copied objects."""
    start = tuple(r.start for r in region)
    counts = tuple(r.stop - r.start for r in region)
    values, mtype = _memory_buffer(src.id.get_type(), counts)
    fspace = src.id.get_space()
    fspace.select_hyperslab(start, counts)
    src.id.read(h5s.create_simple(counts), fspace, values, mtype=mtype)
    _in_file_order(values)
    if remap is not None:
        remap(values, f"dataset '{src.name}'")
    text = h5py.check_string_dtype(values.dtype) is not None and values.shape == counts
    kept = values != src.fillvalue if text else np.ones(counts, bool)
    kept.flat[0] = True
    fspace = new.id.get_space()
    if kept.all():  # as HDF5 writes it: h5py broadcast sequences of one length, and arrays
        fspace.select_hyperslab(start, counts)
        new.id.write(h5s.create_simple(counts), fspace, values, mtype=mtype)
        return
    fspace.select_elements(np.argwhere(kept) + start)
    new.id.write(h5s.create_simple((int(kept.sum()),)), fspace, values[kept], mtype=mtype)


def extendable_chunk(src: h5py.Dataset) -> int:
    """Elements in a chunk of the 1-D `src` made extendable: its length, within at least
    `EXTENDABLE_CHUNK` elements and at most `EXTENDABLE_CHUNK_BYTES` in its file (one element
    at least; text of any length takes `_VLEN_BYTES` an element there, twice its pointer)."""
    most = max(1, EXTENDABLE_CHUNK_BYTES // max(1, _stored_bytes(src.id.get_type())))
    return min(max(src.shape[0], EXTENDABLE_CHUNK), most)


def _made_extendable(src: h5py.Dataset, extendable: bool) -> bool:
    """Whether `copy_dataset` makes `src` chunked and extendable (asked to, and it can)."""
    return (extendable and src.ndim == 1
            and src.id.get_create_plist().get_layout() == h5d.CONTIGUOUS)


# The sizes of HDF5's chunk indexes in the 1.10 format (its file format specification, with
# the parameters HDF5 gives a dataset's index), in bytes: each structure starts with a
# signature, a version and a client ID and ends with a checksum (`_FRAME`), and an array's
# entries come in pages of `_PAGE` once there are more, each page with a checksum of its own
# and a bit in a map saying it was written.
_ADDRESS = 8  # an address in a file HDF5 makes by default
_FRAME = 4 + 1 + 1 + 4
_PAGE = 1 << 10
_FIXED_HEADER = _FRAME + 1 + 1 + 8 + _ADDRESS  # entry size, page bits, entries, block address
# extensible array: 4 entries in its index block, then data blocks of at least 16 entries,
# by super block s: 2^(s//2) blocks of 16 * 2^((s+1)//2) entries; the index block addresses
# the 6 data blocks of super blocks 0-3 and the 25 super blocks after them
_EXTENSIBLE_HEADER = _FRAME + 6 + 6 * 8 + _ADDRESS
_EXTENSIBLE_DIRECT, _EXTENSIBLE_MIN_BLOCK, _EXTENSIBLE_IN_INDEX = 4, 16, 4
_EXTENSIBLE_ADDRESSES = 6 + 25
_BLOCK_OFFSET = 4  # where a data or super block starts in the array (32-bit indexes)
_BTREE_HEADER, _BTREE_NODE = 38, 2048  # a version 2 B-tree's header and each node
_VLEN_BYTES = 4 + _ADDRESS + 4  # a variable-length element: its length, heap address, index


def index_room(src: h5py.Dataset, *, extendable: bool = False) -> int:
    """Bytes at most that the index of the chunks of `src`'s copy (`copy_dataset`, same
    `extendable`) takes in the 1.10 format; 0 where the copy is not chunked or stores no
    chunk, or is one chunk of its own fixed shape (its address is in the dataset's header; a
    chunk larger than the shape, or a shape that may grow, is a fixed array's). Which index
    HDF5 gives a chunked dataset follows from its maximum shape: none unlimited, a fixed
    array with an entry for every chunk that shape holds, allocated whole once one chunk is
    stored; one unlimited, an extensible array, whose blocks of entries HDF5 allocates as a
    chunk indexed in them is stored: those holding the chunks `src` stores (every chunk of
    its shape where it is made extendable: all are written); more, a B-tree of the chunks
    stored, one node where they fit one, else its nodes counted half full (as they may be
    where chunks are not stored in order; the copy stores them in order, which fills them:
    this counts about twice what it takes). An entry is an address, with a stored size and
    a filter mask where the copy is filtered. Exact for a fixed or extensible array and a
    B-tree of one node, measured against what HDF5 allocates
    (tests/test_storage_repair_chunks.py)."""
    made_extendable = _made_extendable(src, extendable)
    if made_extendable:
        chunks: tuple[int, ...] = (extendable_chunk(src),)
        maxshape: tuple[int | None, ...] = (None,)
        stored = -(-src.id.get_storage_size() // (chunks[0] * src.dtype.itemsize))
    else:
        dcpl = src.id.get_create_plist()
        if dcpl.get_layout() != h5d.CHUNKED or src.chunks is None:
            return 0
        chunks, maxshape, stored = src.chunks, src.maxshape, src.id.get_num_chunks()
    if stored == 0:
        return 0
    ftype = src.id.get_type()
    chunk_bytes = int(np.prod(chunks, dtype=object)) * _stored_bytes(ftype)
    entry = _entry_bytes(chunk_bytes, src.id.get_create_plist().get_nfilters() > 0)
    extent = [src.shape[i] if most is None else most for i, most in enumerate(maxshape)]
    counts = [-(-n // c) for n, c in zip(extent, chunks, strict=True)]
    declared = int(np.prod(counts, dtype=object))
    unlimited = sum(most is None for most in maxshape)
    if unlimited == 0:  # a single chunk only where it is the shape, which cannot grow
        return 0 if src.shape == maxshape == chunks else _fixed_array(declared, entry)
    if unlimited == 1:  # HDF5 2.0 misplaces the chunks of one unlimited along a later axis
        dense = made_extendable or stored == declared or maxshape[0] is not None
        indexes = range(declared) if dense else _extensible_indexes(src, counts)
        return _extensible_array(indexes, entry)
    return _btree(stored, entry + 8 * len(chunks))  # a record holds the chunk's offset too


def _extensible_indexes(src: h5py.Dataset, counts: list[int]) -> list[int]:
    """The index in an extensible array of each chunk `src` stores, its first axis the
    unlimited one and `counts` the chunks along each axis its maximum shape holds: HDF5
    numbers the chunks in row-major order (the unlimited axis moved first where it is a
    later one: there, HDF5 2.0 reports the offsets of a 1.10 file's chunks wrongly, so such
    a dataset is counted as if every chunk of its shape were stored)."""
    strides = [int(np.prod(counts[k + 1:], dtype=object)) for k in range(len(counts))]
    found: list[int] = []

    def add(info: h5d.StoreInfo) -> None:
        found.append(sum(o // c * stride for o, c, stride
                         in zip(info.chunk_offset, src.chunks, strides, strict=True)))

    src.id.chunk_iter(add)
    return found


def _stored_bytes(ftype: h5t.TypeID) -> int:
    """Bytes of one element of `ftype` in its file, which sizes a filtered chunk's entry: a
    variable-length one is `_VLEN_BYTES` there, where memory holds a pointer (text) or a count
    and a pointer; a compound or an array grows by what its members do."""
    if ftype.get_class() == h5t.VLEN or (isinstance(ftype, h5t.TypeStringID)
                                         and ftype.is_variable_str()):
        return _VLEN_BYTES
    if isinstance(ftype, h5t.TypeCompoundID):
        return ftype.get_size() + sum(
            _stored_bytes(ftype.get_member_type(i)) - ftype.get_member_type(i).get_size()
            for i in range(ftype.get_nmembers()))
    if isinstance(ftype, h5t.TypeArrayID):
        return (int(np.prod(ftype.get_array_dims(), dtype=object))
                * _stored_bytes(ftype.get_super()))
    return ftype.get_size()


def _entry_bytes(chunk_bytes: int, filtered: bool) -> int:
    """An entry of a chunk index: the chunk's address, and where the chunks are filtered its
    stored size (in the bytes its unfiltered size needs, and one more) and filter mask."""
    if not filtered:
        return _ADDRESS
    return _ADDRESS + min(8, 1 + (chunk_bytes.bit_length() + 7) // 8) + 4


def _paging(entries: int) -> int:
    """What pages add to a block of `entries` entries: a checksum each (none unpaged)."""
    return 4 * -(-entries // _PAGE) if entries > _PAGE else 0


def _fixed_array(entries: int, entry: int) -> int:
    """A fixed array's header and its one data block, all its pages allocated with it."""
    pages = -(-entries // _PAGE) if entries > _PAGE else 0
    block = _FRAME + _ADDRESS + -(-pages // 8) + entries * entry + _paging(entries)
    return _FIXED_HEADER + block


def _extensible_array(indexes: Collection[int], entry: int) -> int:
    """An extensible array holding entries at `indexes`: its header and index block, and each
    data block holding one of them (with the super block addressing it, past the index
    block's own), which HDF5 allocates as an entry in it is first set."""
    size = (_EXTENSIBLE_HEADER + _FRAME + _ADDRESS + _EXTENSIBLE_DIRECT * entry
            + _EXTENSIBLE_ADDRESSES * _ADDRESS)
    if isinstance(indexes, range):  # every entry below its end: counted a block at a time
        last = indexes.stop - 1
        placed = None
    else:
        placed = np.unique(np.fromiter(indexes, dtype=np.int64, count=len(indexes)))
        last = int(placed[-1]) if placed.size else -1
    start, level = _EXTENSIBLE_DIRECT, 0
    while start <= last:
        blocks = 1 << (level // 2)
        each = _EXTENSIBLE_MIN_BLOCK << ((level + 1) // 2)
        if placed is None:
            used = min(blocks, -(-(last + 1 - start) // each))
        else:
            here = placed[(placed >= start) & (placed < start + blocks * each)]
            used = np.unique((here - start) // each).size
        pages = each // _PAGE if each > _PAGE else 0
        if used and level >= _EXTENSIBLE_IN_INDEX:  # a super block addressing its data blocks
            size += (_FRAME + _ADDRESS + _BLOCK_OFFSET + blocks * _ADDRESS
                     + blocks * -(-pages // 8))
        size += used * (_FRAME + _ADDRESS + _BLOCK_OFFSET + each * entry + _paging(each))
        start += blocks * each
        level += 1
    return size


def _btree(records: int, record: int) -> int:
    """A version 2 B-tree of `records` records of `record` bytes: its root node alone where
    they fit it, else its nodes at least half full (its leaves, then each level of nodes
    above them: a record and a child's address and counts each)."""
    if records <= (_BTREE_NODE - _FRAME) // record:
        return _BTREE_HEADER + _BTREE_NODE
    half = max(1, (_BTREE_NODE - _FRAME) // record // 2)
    level = -(-records // half)
    nodes = level
    above = max(2, (_BTREE_NODE - _FRAME) // (record + _ADDRESS + 16) // 2)
    while level > 1:
        level = -(-level // above)
        nodes += level
    return _BTREE_HEADER + nodes * _BTREE_NODE


def _creation_plist(src: h5py.Dataset) -> h5p.PropDCID:
    """`src`'s creation properties (fill value and time, attribute order, filters with
    their flags, parameters and names, so a raw chunk reads back through them), its layout
    set anew: as copied, it keeps the encoding its file gave it (a compressed dataset's
    layout written with the "latest" format, which no HDF5 1.x reads). The filter pipeline
    is kept as it is: set anew, a filter's name would be the one registered here, or none
    where this HDF5 does not have the filter (an optional one). A virtual dataset's, or one
    stored in external files, is copied as it is: its mapping is the dataset."""
    old = src.id.get_create_plist()
    layout = old.get_layout()
    if layout not in _LAYOUTS or old.get_external_count():
        return old
    new = old.copy()
    new.set_layout(h5d.CONTIGUOUS)  # the library's own layout, its encoding unset
    if layout == h5d.CHUNKED:
        new.set_chunk(old.get_chunk())
    elif layout == h5d.COMPACT:
        new.set_layout(h5d.COMPACT)
    return new


def _check_filters(src: h5py.Dataset, source: str) -> None:
    """InputError where `src` needs a filter (one not marked optional) that this HDF5 does
    not have: its copy could not be made, and the file is not damaged for it."""
    dcpl = src.id.get_create_plist()
    for i in range(dcpl.get_nfilters()):
        code, flags, _, name = dcpl.get_filter(i)
        if flags & h5z.FLAG_OPTIONAL or h5z.filter_avail(code):
            continue
        called = name.decode(errors="replace").split(";")[0].strip()
        raise InputError(
            f"dataset '{src.name}' is stored through HDF5 filter {code}"
            f"{f' ({called})' if called else ''}, which this HDF5 does not have; expected "
            "only filters it can apply: install the filter's plugin (one the hdf5plugin "
            "package holds, or in the folder HDF5_PLUGIN_PATH names), then try again; it is "
            "left as it was", source=source)


def _file_type(src: h5py.Dataset) -> h5t.TypeID:
    """`src`'s type as a transient one in the oldest encoding that describes it. Numbers and
    booleans are made anew from their numpy type (byte order included), which says all of
    them: a copied type keeps the encoding its file gave it, which for a boolean written by
    a newer HDF5 with the "latest" format is one no HDF5 1.x reads; compounds and arrays are
    made anew around such numbers (`oldest_type`). Anything else (fixed text with its padding
    and character set) is its file's type, copied (a named type belongs to its file: a copy
    is made with that type's copy, `relinking.Relinks.file_type`)."""
    return oldest_type(src.id.get_type())


def oldest_type(ftype: h5t.TypeID) -> h5t.TypeID:
    """`ftype` made anew where it holds numbers (see `_file_type`): a number or an enum
    from its numpy type; a compound or an array member by member, each member's name,
    offset and size as they were (a copied compound keeps its file's encoding too);
    anything else copied."""
    kind = ftype.get_class()
    if kind in (h5t.INTEGER, h5t.FLOAT, h5t.ENUM):
        made = h5t.py_create(ftype.dtype, logical=True)
        return made if made == ftype else ftype.copy()  # numpy's is not quite it: as it was
    if kind == h5t.COMPOUND:
        made = h5t.create(h5t.COMPOUND, ftype.get_size())
        for i in range(ftype.get_nmembers()):
            made.insert(ftype.get_member_name(i), ftype.get_member_offset(i),
                        oldest_type(ftype.get_member_type(i)))
        return made
    if kind == h5t.ARRAY:
        return h5t.array_create(oldest_type(ftype.get_super()), ftype.get_array_dims())
    return ftype.copy()


def _needs_memory(ftype: h5t.TypeID) -> bool:
    """Whether values of `ftype` point outside the dataset (variable-length data, references
    into their file), so that they are copied only through memory, converted. Text of any
    length in an array is not found by HDF5's `detect_class` (in a record it is)."""
    return bool(
        ftype.detect_class(h5t.VLEN) or ftype.detect_class(h5t.REFERENCE)
        or (isinstance(ftype, h5t.TypeStringID) and ftype.is_variable_str())
        or (isinstance(ftype, h5t.TypeArrayID) and _needs_memory(ftype.get_super())))


def _check_text_size(src: h5py.Dataset, ftype: h5t.TypeID, source: str) -> None:
    """InputError where `src` declares more than `TEXT_LIMIT` bytes of text or of
    variable-length data (read whole to copy it)."""
    size = int(np.prod(src.shape or (), dtype=object))
    if size == 0:
        return
    per = _POINTER_BYTES if _needs_memory(ftype) else ftype.get_size()
    if size * per > TEXT_LIMIT:
        shape = "x".join(str(n) for n in src.shape or ()) or "scalar"
        raise InputError(
            f"dataset '{src.name}' declares {shape} values of text or variable-length data "
            f"({size * per / 1e6:.3g} MB); expected at most {TEXT_LIMIT / 1e6:.3g} MB of it in "
            "a session file: it is left as it was, copy what it needs with an HDF5 tool",
            source=source)


def allocated_chunks(src: h5py.Dataset) -> list[tuple[int, ...]]:
    """The offsets of the chunks `src`'s file holds, in the file's order."""
    offsets: list[tuple[int, ...]] = []
    src.id.chunk_iter(lambda info: offsets.append(tuple(info.chunk_offset)))
    return offsets


def copy_chunk(src: h5d.DatasetID, dst: h5d.DatasetID, offset: tuple[int, ...]) -> None:
    """The chunk at `offset` copied raw: as stored (filtered), its filter mask kept."""
    mask, data = src.read_direct_chunk(offset)
    dst.write_direct_chunk(offset, data, mask)


def _blocks(shape: tuple[int, ...], itemsize: int
            ) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(start, count) of hyperslabs covering `shape` in row-major order, each of at most
    `BLOCK_BYTES` (or one element where an element is larger)."""
    if not shape:
        yield (), ()
        return
    inner = itemsize * int(np.prod(shape[1:], dtype=object))
    if inner <= BLOCK_BYTES or len(shape) == 1:
        step = max(1, BLOCK_BYTES // max(1, inner))
        for i in range(0, shape[0], step):
            yield (i, *[0] * (len(shape) - 1)), (min(step, shape[0] - i), *shape[1:])
        return
    for i in range(shape[0]):
        for start, count in _blocks(shape[1:], itemsize):
            yield (i, *start), (1, *count)


def _copy_block(src: h5d.DatasetID, dst: h5d.DatasetID, ftype: h5t.TypeID,
                start: tuple[int, ...], count: tuple[int, ...]) -> None:
    """One hyperslab copied as raw bytes of the file's type `ftype` (nothing converted)."""
    buf = np.empty(count, dtype=np.dtype((np.void, ftype.get_size())))
    if not count:
        src.read(h5s.ALL, h5s.ALL, buf, mtype=ftype)
        dst.write(h5s.ALL, h5s.ALL, buf, mtype=ftype)
        return
    mspace = h5s.create_simple(count)
    for ds, io in ((src, src.read), (dst, dst.write)):
        fspace = ds.get_space()
        fspace.select_hyperslab(start, count)
        io(mspace, fspace, buf, mtype=ftype)
