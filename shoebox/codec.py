"""Record codecs: pure bytes in, bytes out, no file I/O.

Every record starts with the same 6-byte preamble (begin-of-record marker,
then an int16 version); :data:`CODECS` maps each version to the codec that
reads its body, so a new version is one new class registered here.
Version 1 is the layout of the original StackTach shoebox (read only);
version 2 is what shoebox writes. ``docs/format.md`` describes both byte by
byte.

Decoders work on a buffer that may hold only part of a record: when more
bytes are needed they raise :class:`Incomplete` with the number of bytes
needed from the record's start, which is never more than the record size
limit, so a corrupt length field cannot make a reader allocate more.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import ClassVar

from .errors import (
    BadMarker,
    BadMetadata,
    ChecksumMismatch,
    CorruptRecord,
    InvalidRecord,
    RecordTooLarge,
    RecordTypeError,
    UnknownVersion,
)

#: The begin-of-record marker; its decimal digits are the ASCII codes of "EVNT".
MARKER = 0x69867884
#: The marker as it appears on disk (little-endian).
MARKER_BYTES = struct.pack("<I", MARKER)
#: Bytes in the preamble every record starts with: marker and version.
PREAMBLE_SIZE = 6
#: The default largest record, in bytes, that is written or read: 64 MiB.
DEFAULT_MAX_RECORD_SIZE = 64 * 1024 * 1024

_PREAMBLE = struct.Struct("<Ih")
_V2_PREAMBLE = _PREAMBLE.pack(MARKER, 2)
_pack_crc = struct.Struct("<I").pack
# Preamble, version 2 header and the pair count that follows it when the
# extension area is empty.
_unpack_v2_head = struct.Struct("<IhHIIII").unpack_from
_crc32 = zlib.crc32
#: CRC-32 of any data followed by its own CRC (little-endian): checking a
#: record against it takes one ``crc32`` call and no unpacking.
_CRC_RESIDUE = 0x2144DF1C
# Records longer than this are checksummed and decoded through a memoryview
# of the buffer: a slice of a 64 MiB record is a 64 MiB copy (issue 17: one
# record of the maximum size peaked at 600 MB). Shorter ones are sliced,
# which costs less than making a view.
_VIEW_ABOVE = 1 << 16

Metadata = dict[str, str]
Record = tuple[Metadata, str]
#: What records are decoded from: bytes, or a bytearray a reader filled.
Buffer = bytes | bytearray


class Incomplete(Exception):
    """The buffer ends before the record does; ``needed`` bytes from the
    record's start would let decoding go on."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


@functools.lru_cache(maxsize=256)
def _lengths_struct(count: int, signed: bool) -> struct.Struct:
    """A ``struct.Struct`` for ``count`` little-endian 32-bit lengths."""
    return struct.Struct(f"<{count}{'i' if signed else 'I'}")


# Unpackers of ``count`` uint32 lengths, by count: a dict lookup, not an
# lru_cache call, since decode_run checks every record's lengths.
_V2_LENGTHS: dict[int, Callable[[Buffer, int], tuple[int, ...]]] = {}


def _v2_lengths_unpacker(count: int) -> Callable[[Buffer, int], tuple[int, ...]]:
    """The ``unpack_from`` of ``count`` version 2 string lengths (made once)."""
    unpack = _V2_LENGTHS.get(count)
    if unpack is None:
        if len(_V2_LENGTHS) >= 256:  # bounded, like _V2_HEADS
            _V2_LENGTHS.clear()
        unpack = _V2_LENGTHS[count] = _lengths_struct(count, signed=False).unpack_from
    return unpack


# Packers of a version 2 head after the preamble (flags, extension,
# metadata and payload lengths, pair count, the 2 * pairs string lengths),
# by pair count. A dict lookup, not an lru_cache call: this runs per record.
_V2_HEADS: dict[int, Callable[..., bytes]] = {}


def _v2_head_packer(pairs: int) -> Callable[..., bytes]:
    """The packer of a version 2 head for ``pairs`` metadata pairs (made once)."""
    pack = _V2_HEADS.get(pairs)
    if pack is None:
        if len(_V2_HEADS) >= 256:  # bounded, as the lru_cache it replaces was
            _V2_HEADS.clear()
        pack = _V2_HEADS[pairs] = struct.Struct(f"<HIIII{2 * pairs}I").pack
    return pack


def _decode_strings(buf: Buffer | memoryview, start: int, lengths: tuple[int, ...],
                    terminated: bool) -> list[str]:
    """Decode the UTF-8 strings of the given byte lengths that start at
    ``buf[start]`` one after another, each followed by a NUL byte if
    ``terminated``: those must be there (:class:`BadMetadata` if not,
    checked before any string is decoded)."""
    gap = 1 if terminated else 0
    if terminated:
        pos = start
        for index, length in enumerate(lengths):
            pos += length
            if buf[pos] != 0:
                raise BadMetadata(f"metadata lengths do not add up: string {index} "
                                  f"({length} bytes) is not followed by its NUL "
                                  f"terminator at +{pos - start}")
            pos += 1
    strings = []
    pos = start
    for length in lengths:
        try:
            strings.append(str(buf[pos:pos + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise CorruptRecord(f"metadata string at +{pos - start} is not valid UTF-8 "
                                f"({exc.reason})") from None
        pos += length + gap
    return strings


def _pairs(strings: list[str]) -> Metadata:
    """Alternating keys and values as a dict; :class:`BadMetadata` when a
    key repeats (the block then describes no dict)."""
    it = iter(strings)
    metadata = dict(zip(it, it, strict=True))
    if 2 * len(metadata) != len(strings):
        seen = set()
        for key in strings[::2]:
            if key in seen:
                raise BadMetadata(f"metadata repeats key {key!r}")
            seen.add(key)
    return metadata


def _bad_metadata(metadata: object) -> RecordTypeError:
    """The error for metadata that is not a dict of str to str, naming the
    first offending key."""
    if not isinstance(metadata, dict):
        return RecordTypeError(
            f"metadata must be a dict of str to str, not {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            return RecordTypeError(f"metadata key {key!r} is {type(key).__name__}, not str")
        if not isinstance(value, str):
            return RecordTypeError(
                f"metadata value for key {key!r} is {type(value).__name__}, not str")
    raise AssertionError("metadata is valid")  # pragma: no cover


def _encode_utf8(strings: list[str]) -> list[bytes]:
    """UTF-8 of each string; ``InvalidRecord`` names the key that cannot be encoded."""
    encoded = []
    for index, text in enumerate(strings):
        try:
            encoded.append(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            what = "key" if index % 2 == 0 else "value for key"
            raise InvalidRecord(
                f"metadata {what} {strings[index - index % 2]!r} cannot be "
                f"encoded as UTF-8 ({exc.reason})") from None
    return encoded


def _encode_payload(payload: object) -> bytes:
    """Validate a payload (str, or bytes holding UTF-8) and return its bytes."""
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRecord(
                f"payload cannot be encoded as UTF-8 at index {exc.start} "
                f"({exc.reason})") from None
    if isinstance(payload, (bytes, bytearray, memoryview)):
        data = bytes(payload)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(
                f"payload bytes are not valid UTF-8 at byte {exc.start} "
                f"({exc.reason})") from None
        return data
    raise RecordTypeError(f"payload must be str or bytes, not {type(payload).__name__}")


class RecordCodec:
    """Reads (and, for the current version, writes) one record version.

    Subclasses set :attr:`version` and implement :meth:`decode`.
    """

    version: ClassVar[int]

    def decode(self, buf: Buffer, start: int, max_record_size: int) -> tuple[Metadata, str, int]:
        """Decode the record whose preamble starts at ``buf[start]``.

        Returns ``(metadata, payload, end)`` where ``end`` is the offset just
        past the record. Raises :class:`Incomplete` when ``buf`` ends too
        early and :class:`~shoebox.errors.CorruptRecord` (or a subclass) when
        the record is damaged; offsets in the message are relative.
        """
        raise NotImplementedError

    def length(self, buf: Buffer, start: int, max_record_size: int) -> int:
        """The byte length of the record whose preamble starts at ``buf[start]``,
        from its header alone: nothing decoded, no checksum checked (for
        counting or skipping records fast).

        Raises :class:`Incomplete` when ``buf`` ends within the header and
        :class:`~shoebox.errors.CorruptRecord` for lengths no valid record has.
        """
        raise NotImplementedError


class Version1Codec(RecordCodec):
    """The 2014 StackTach layout (``FORMAT-v1.md``): int32 lengths, no checksum."""

    version = 1
    _HEADER = struct.Struct("<iii")
    _COUNT = struct.Struct("<i")
    HEADER_END = PREAMBLE_SIZE + _HEADER.size

    def length(self, buf: Buffer, start: int, max_record_size: int) -> int:
        if len(buf) - start < self.HEADER_END:
            raise Incomplete(self.HEADER_END)
        meta_len, payload_len, end_marker = self._HEADER.unpack_from(buf, start + PREAMBLE_SIZE)
        if end_marker != 0:
            raise CorruptRecord(f"version 1 end-of-header field is {end_marker}, not 0")
        if meta_len < 4 or payload_len < 4:
            raise CorruptRecord(
                f"version 1 block lengths {meta_len}/{payload_len} are below the minimum of 4")
        total: int = self.HEADER_END + meta_len + payload_len
        if total > max_record_size:
            raise CorruptRecord(
                f"record length {total} exceeds max_record_size {max_record_size}")
        return total

    def decode(self, buf: Buffer, start: int, max_record_size: int) -> tuple[Metadata, str, int]:
        total = self.length(buf, start, max_record_size)
        if len(buf) - start < total:
            raise Incomplete(total)
        meta_len, payload_len, _ = self._HEADER.unpack_from(buf, start + PREAMBLE_SIZE)
        meta_start = start + self.HEADER_END
        (count,) = self._COUNT.unpack_from(buf, meta_start)
        if count < 0 or count % 4:
            raise BadMetadata(f"version 1 metadata count field {count} is not 4 * pairs")
        fields = count // 2
        if 4 + 4 * fields > meta_len:
            raise BadMetadata(
                f"version 1 metadata count {count} does not fit its block of {meta_len} bytes")
        lengths = _lengths_struct(fields, signed=True).unpack_from(buf, meta_start + 4)
        strings_start = meta_start + 4 + 4 * fields
        if min(lengths, default=0) < 0 or strings_start + sum(lengths) != meta_start + meta_len:
            raise BadMetadata("version 1 metadata lengths do not add up to the block length")
        strings = _decode_strings(buf, strings_start, lengths, terminated=False)
        it = iter(strings)
        metadata = dict(zip(it, it, strict=True))
        payload_start = meta_start + meta_len
        (length,) = self._COUNT.unpack_from(buf, payload_start)
        if length != payload_len - 4:
            raise CorruptRecord(
                f"version 1 payload length {length} does not match its block of "
                f"{payload_len} bytes")
        try:
            payload = buf[payload_start + 4:start + total].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptRecord(f"payload is not valid UTF-8 ({exc.reason})") from None
        return metadata, payload, start + total


class Version2Codec(RecordCodec):
    """The current layout: flags, extension area, uint32 lengths, NUL-terminated
    metadata strings and a CRC-32 over everything after the preamble."""

    version = 2
    _PAIRS = struct.Struct("<I")
    # The extension, metadata and payload lengths, after marker, version, flags.
    _LENGTHS = struct.Struct("<III")
    HEADER_END = 20
    #: Flags in the low byte must be understood by a reader; those in the high
    #: byte may be ignored. Version 2.0 defines none.
    REQUIRED_FLAGS_MASK = 0x00FF
    KNOWN_FLAGS = 0

    def encode(self, metadata: Metadata, payload: str | bytes,
               max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> bytes:
        """Validate and encode one record, preamble included.

        Raises :class:`~shoebox.errors.RecordTypeError` naming the offending
        key for metadata that is not ``dict[str, str]`` or a payload that is
        not ``str``/``bytes``, :class:`~shoebox.errors.InvalidRecord` for text
        that is not valid UTF-8, and :class:`~shoebox.errors.RecordTooLarge`
        when the record would exceed ``max_record_size``.
        """
        # Few calls per record: this runs for every record written.
        if type(metadata) is not dict and not isinstance(metadata, dict):
            raise _bad_metadata(metadata)
        # Keys and values, then "" so that joining ends the last string with
        # its NUL too (and an empty dict gives no bytes at all).
        strings = [*chain.from_iterable(metadata.items()), ""]
        try:
            # str.join type-checks every string in C: the fast validation.
            text = "\0".join(strings)
        except TypeError:
            raise _bad_metadata(metadata) from None
        del strings[-1]
        pairs = len(metadata)
        if text.isascii():
            blob = text.encode("ascii")
            lengths: Iterable[int] = map(len, strings)
        else:
            encoded = _encode_utf8(strings)
            blob = b"\0".join(encoded) + b"\0"
            lengths = map(len, encoded)
        if type(payload) is str:
            try:
                data = payload.encode("utf-8")
            except UnicodeEncodeError:
                data = _encode_payload(payload)  # raises, naming the position
        else:
            data = _encode_payload(payload)
        size = len(data)
        meta_len = 4 + 8 * pairs + len(blob)
        if 24 + meta_len + size > max_record_size:
            raise RecordTooLarge(
                f"record of {24 + meta_len + size} bytes exceeds "
                f"max_record_size {max_record_size}")
        pack = _V2_HEADS.get(pairs) or _v2_head_packer(pairs)
        # Header and metadata as one object: one CRC call less.
        head = pack(0, 0, meta_len, size, pairs, *lengths) + blob
        return b"".join((_V2_PREAMBLE, head, data,
                         _pack_crc(_crc32(data, _crc32(head)))))

    def length(self, buf: Buffer, start: int, max_record_size: int) -> int:
        if len(buf) - start < self.HEADER_END:
            raise Incomplete(self.HEADER_END)
        ext_len, meta_len, payload_len = self._LENGTHS.unpack_from(buf, start + 8)
        total: int = 24 + ext_len + meta_len + payload_len
        if total > max_record_size:
            raise CorruptRecord(
                f"record length {total} exceeds max_record_size {max_record_size}")
        return total

    def decode(self, buf: Buffer, start: int, max_record_size: int) -> tuple[Metadata, str, int]:
        try:
            marker, version, flags, ext_len, meta_len, payload_len, pairs = _unpack_v2_head(
                buf, start)
        except struct.error:
            raise Incomplete(24) from None
        if marker != MARKER or version != 2:
            # Only when called directly, as readers do on their fast path;
            # decode_record() has checked the preamble already.
            raise CorruptRecord("not the start of a version 2 record")
        total = 24 + ext_len + meta_len + payload_len
        if total > max_record_size:
            raise CorruptRecord(
                f"record length {total} exceeds max_record_size {max_record_size}")
        end = start + total
        if len(buf) < end:
            raise Incomplete(total)
        data: Buffer | memoryview = memoryview(buf) if total > _VIEW_ABOVE else buf
        if _crc32(data[start + PREAMBLE_SIZE:end]) != _CRC_RESIDUE:
            (stored,) = self._PAIRS.unpack_from(buf, end - 4)
            actual = _crc32(data[start + PREAMBLE_SIZE:end - 4])
            raise ChecksumMismatch(
                f"checksum mismatch: stored {stored:#010x}, computed {actual:#010x}")
        if flags & _V2_UNKNOWN_REQUIRED:
            raise CorruptRecord(f"record sets required flags {flags:#06x} this reader "
                                "does not understand")
        meta_start = start + 20 + ext_len
        meta_end = meta_start + meta_len
        if ext_len:
            (pairs,) = self._PAIRS.unpack_from(buf, meta_start)
        count = 2 * pairs
        strings_start = meta_start + 4 + 4 * count
        if strings_start > meta_end:
            raise BadMetadata(
                f"metadata pair count {pairs} does not fit its block of {meta_len} bytes")
        lengths = _lengths_struct(count, signed=False).unpack_from(buf, meta_start + 4)
        if sum(lengths) + count != meta_end - strings_start:
            raise BadMetadata(
                f"metadata lengths do not add up: {count} strings of {sum(lengths)} bytes "
                f"and their terminators in {meta_end - strings_start} bytes")
        # The lengths and terminators first, then UTF-8: with one NUL per
        # string (none inside one) and the lengths those of the pieces, the
        # area is decoded once and split; else the strings are taken by
        # their lengths, which checks each terminator.
        area = bytes(data[strings_start:meta_end])
        pieces = area.split(b"\0")
        try:
            if len(pieces) == count + 1 and lengths == tuple(map(len, pieces))[:-1]:
                strings = area.decode("utf-8").split("\0")
                del strings[-1]
            else:
                strings = _decode_strings(data, strings_start, lengths, terminated=True)
            payload = str(data[meta_end:end - 4], "utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptRecord(f"metadata or payload is not valid UTF-8 ({exc.reason})"
                                ) from None
        return _pairs(strings), payload, end

    def decode_run(self, buf: Buffer, start: int,
                   max_record_size: int) -> Iterator[tuple[Metadata, str, int]]:
        """Decode the records that follow one another from ``buf[start]``, as
        :meth:`decode` does, while they are plain: whole in ``buf``, of this
        version, no longer than ``max_record_size`` (nor than the size above
        which :meth:`decode` reads through a memoryview), with an intact
        checksum, no extension area, no flags, no NUL inside a metadata
        string and lengths that agree with the strings. It stops, without a
        word, at the first that is not (or at the end of ``buf``);
        :meth:`decode` then says what that one is. Yields ``(metadata,
        payload, end)``.

        The readers' loop: per record one resumption instead of a call,
        and only the checks a plain record needs.
        """
        unpack = _unpack_v2_head
        crc32 = _crc32
        limit = min(max_record_size, _VIEW_ABOVE)
        # The lengths unpacker of the pair count seen last: records in a
        # run mostly have the same count.
        unpack_lengths, last_count = _v2_lengths_unpacker(0), 0
        while True:
            try:
                marker, version, flags, ext_len, meta_len, payload_len, pairs = unpack(
                    buf, start)
            except struct.error:
                return  # the buffer ends within the header
            total = 24 + meta_len + payload_len
            end = start + total
            if (marker != MARKER or version != 2 or flags or ext_len
                    or total > limit or len(buf) < end
                    or crc32(buf[start + PREAMBLE_SIZE:end]) != _CRC_RESIDUE):
                return
            count = 2 * pairs
            # Metadata strings and payload decoded in one call, split at the
            # first 2 * pairs NULs (the payload may hold NULs of its own).
            raw = buf[start + 24 + 4 * count:end - 4]
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                return
            strings = text.split("\0", count)
            payload = strings.pop()
            if count != last_count:
                unpack_lengths, last_count = _v2_lengths_unpacker(count), count
            # The lengths must be the strings' (issue 17: a block whose lengths
            # disagree is corrupt, CRC or not). Byte lengths are character
            # lengths in ASCII text; else take them from the bytes.
            if text.isascii():
                if (len(payload) != payload_len
                        or unpack_lengths(buf, start + 24) != tuple(map(len, strings))):
                    return
            else:
                sizes = [*map(len, raw.split(b"\0", count))]
                if sizes.pop() != payload_len or unpack_lengths(buf, start + 24) != tuple(sizes):
                    return
            it = iter(strings)
            metadata = dict(zip(it, it))  # noqa: B905 - zip's strict= costs more than the rest
            if len(metadata) != pairs:
                return  # a key repeats
            yield metadata, payload, end
            start = end


# Required flags this reader does not understand; a module global, not a
# class attribute, since decoding reads it for every record.
_V2_UNKNOWN_REQUIRED = Version2Codec.REQUIRED_FLAGS_MASK & ~Version2Codec.KNOWN_FLAGS

#: The codec new records are written with.
CURRENT = Version2Codec()
#: Codecs by record version. Register a new version by adding its codec here.
CODECS: dict[int, RecordCodec] = {codec.version: codec for codec in (Version1Codec(), CURRENT)}
#: The version new records are written with.
CURRENT_VERSION = CURRENT.version


#: Validate and encode one record in the current version (a bound
#: :meth:`Version2Codec.encode`: one call less on the hot path).
encode_record = CURRENT.encode


def record_version(buf: Buffer, start: int = 0) -> int:
    """The version field of the record whose preamble starts at ``buf[start]``."""
    return _PREAMBLE.unpack_from(buf, start)[1]


def decode_record(buf: Buffer, start: int = 0,
                  max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> tuple[Metadata, str, int]:
    """Decode the record of any registered version that starts at ``buf[start]``.

    Returns ``(metadata, payload, end)``. Raises :class:`Incomplete` when
    ``buf`` holds only part of the record, :class:`~shoebox.errors.BadMarker`
    when no record starts there, :class:`~shoebox.errors.UnknownVersion` for a
    version without a codec, and other :class:`~shoebox.errors.CorruptRecord`
    subclasses for damage.
    """
    return _codec_at(buf, start).decode(buf, start, max_record_size)


def record_length(buf: Buffer, start: int = 0,
                  max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> int:
    """The byte length of the record of any registered version that starts at
    ``buf[start]``, read from its preamble and header only (see
    :meth:`RecordCodec.length`): ``buf`` need not hold the rest of the
    record, and its checksum is not checked. Raises as :func:`decode_record`.
    """
    return _codec_at(buf, start).length(buf, start, max_record_size)


def _codec_at(buf: Buffer, start: int) -> RecordCodec:
    """The codec of the record whose preamble starts at ``buf[start]``."""
    if len(buf) - start < PREAMBLE_SIZE:
        raise Incomplete(PREAMBLE_SIZE)
    marker, version = _PREAMBLE.unpack_from(buf, start)
    if marker != MARKER:
        raise BadMarker(f"bad begin-of-record marker {marker:#010x}")
    codec = CODECS.get(version)
    if codec is None:
        raise UnknownVersion(f"unknown record version {version}")
    return codec


__all__ = [
    "CODECS",
    "CURRENT",
    "CURRENT_VERSION",
    "DEFAULT_MAX_RECORD_SIZE",
    "MARKER",
    "MARKER_BYTES",
    "PREAMBLE_SIZE",
    "Buffer",
    "Incomplete",
    "Metadata",
    "Record",
    "RecordCodec",
    "Version1Codec",
    "Version2Codec",
    "decode_record",
    "encode_record",
    "record_length",
    "record_version",
]
