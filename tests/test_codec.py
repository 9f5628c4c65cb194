"""Record codecs: round trips, the version 1 layout, limits and damage."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoebox import (
    BadMarker,
    ChecksumMismatch,
    CorruptRecord,
    InvalidRecord,
    RecordTooLarge,
    RecordTypeError,
    UnknownVersion,
    decode_record,
    encode_record,
)
from shoebox.codec import Incomplete, record_length

DOCS = Path(__file__).resolve().parent.parent / "docs" / "format.md"


def v1_record(metadata: dict[str, str], payload: str) -> bytes:
    """A version 1 record built from the FORMAT-v1.md description, not from
    the codec under test."""
    strings = [s.encode() for kv in metadata.items() for s in kv]
    meta = struct.pack("<i", 4 * len(metadata))
    meta += b"".join(struct.pack("<i", len(s)) for s in strings) + b"".join(strings)
    body = payload.encode()
    block = struct.pack("<i", len(body)) + body
    return (struct.pack("<Ih", 0x69867884, 1) + struct.pack("<iii", len(meta), len(block), 0)
            + meta + block)


def test_v1_worked_example_from_the_format_description_decodes():
    data = bytes.fromhex(
        "84 78 86 69 01 00"
        "0f 00 00 00 0b 00 00 00 00 00 00 00"
        "04 00 00 00 01 00 00 00 02 00 00 00 61 62 63"
        "07 00 00 00 7b 22 78 22 3a 31 7d")
    assert v1_record({"a": "bc"}, '{"x":1}') == data
    assert decode_record(data) == ({"a": "bc"}, '{"x":1}', len(data))


@pytest.mark.parametrize("metadata", [
    {},
    {"ключ": "значение", "emoji": "🦄", "": ""},
    {"request_id": "abc", "tenant": "t-1", "level": "INFO"},
])
def test_v1_records_with_non_ascii_and_empty_metadata_decode(metadata):
    data = v1_record(metadata, '{"msg": "héllo"}')
    decoded, payload, end = decode_record(data)
    assert decoded == metadata
    assert list(decoded) == list(metadata)
    assert payload == '{"msg": "héllo"}'
    assert end == len(data)


def test_v2_worked_example_in_docs_matches_the_encoder():
    text = DOCS.read_text()
    section = text.split("### Worked example", 1)[1].split("```", 2)[1]
    hex_bytes = " ".join(re.findall(r"^((?:[0-9a-f]{2} )*[0-9a-f]{2})", section, re.M))
    assert encode_record({"a": "bc"}, '{"x":1}') == bytes.fromhex(hex_bytes)


metadata_dicts = st.dictionaries(st.text(), st.text(), max_size=8)


@given(metadata=metadata_dicts, payload=st.text())
def test_any_str_metadata_and_payload_round_trip(metadata, payload):
    data = encode_record(metadata, payload)
    decoded, text, end = decode_record(data)
    assert decoded == metadata and list(decoded) == list(metadata)
    assert text == payload
    assert end == len(data)


@given(metadata=metadata_dicts, payload=st.text())
def test_record_length_reads_the_length_of_either_version_from_the_header_alone(
        metadata, payload):
    for record in (v1_record(metadata, payload), encode_record(metadata, payload)):
        assert record_length(record[:20]) == len(record)
    with pytest.raises(Incomplete):
        record_length(encode_record(metadata, payload)[:19])


def test_record_length_refuses_what_is_not_a_record():
    with pytest.raises(BadMarker):
        record_length(b"\0" * 24)
    with pytest.raises(CorruptRecord, match="exceeds max_record_size"):
        record_length(encode_record({}, "x" * 100), max_record_size=50)


@given(metadata=metadata_dicts, payload=st.text())
def test_records_of_both_versions_concatenate(metadata, payload):
    data = v1_record(metadata, payload) + encode_record(metadata, payload)
    first = decode_record(data)
    second = decode_record(data, first[2])
    assert first[:2] == second[:2] == (metadata, payload)
    assert second[2] == len(data)


def test_payload_bytes_holding_utf8_are_stored_as_text():
    data = encode_record({}, "é".encode())
    assert decode_record(data)[1] == "é"


@pytest.mark.parametrize(("metadata", "payload", "error", "words"), [
    ({"k": 1}, "{}", RecordTypeError, "'k'"),
    ({2: "v"}, "{}", RecordTypeError, "2"),
    ([("k", "v")], "{}", RecordTypeError, "list"),
    ({"k": "v"}, {"a": 1}, RecordTypeError, "dict"),
    ({"k": "\ud800"}, "{}", InvalidRecord, "'k'"),
    ({}, b"\xff\xfe", InvalidRecord, "byte 0"),
    ({}, "ok\udc80", InvalidRecord, "index 2"),
])
def test_bad_records_are_refused_with_a_message_naming_the_problem(
        metadata, payload, error, words):
    with pytest.raises(error, match=re.escape(words)):
        encode_record(metadata, payload)


def test_bad_metadata_type_is_also_a_typeerror():
    with pytest.raises(TypeError):
        encode_record({"k": None}, "{}")


def test_a_record_over_the_limit_is_refused():
    with pytest.raises(RecordTooLarge, match="exceeds max_record_size 100"):
        encode_record({}, "x" * 100, max_record_size=100)
    assert len(encode_record({}, "x" * 70, max_record_size=100)) <= 100


def test_a_corrupt_length_never_asks_for_more_than_the_limit():
    data = bytearray(encode_record({"k": "v"}, "{}"))
    data[16:20] = struct.pack("<I", 0xFFFFFFF0)  # payload length
    with pytest.raises(CorruptRecord, match="exceeds max_record_size"):
        decode_record(bytes(data))


def test_a_partial_record_asks_for_exactly_its_length():
    data = encode_record({"k": "v"}, "{}")
    with pytest.raises(Incomplete) as info:
        decode_record(data[:25])
    assert info.value.needed == len(data)


@pytest.mark.parametrize(("offset", "error"), [
    (0, BadMarker), (4, UnknownVersion), (30, ChecksumMismatch), (-1, ChecksumMismatch),
])
def test_damage_is_detected_by_kind(offset, error):
    data = bytearray(encode_record({"key": "value"}, '{"a": 1}'))
    data[offset] ^= 0x40
    with pytest.raises(error):
        decode_record(bytes(data))


def test_an_unknown_required_flag_is_refused_and_an_optional_one_ignored():
    import zlib

    def with_flags(flags: int) -> bytes:
        data = bytearray(encode_record({"k": "v"}, "{}"))
        data[6:8] = struct.pack("<H", flags)
        data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[6:-4])))
        return bytes(data)

    with pytest.raises(CorruptRecord, match="required flags 0x0001"):
        decode_record(with_flags(0x0001))
    assert decode_record(with_flags(0x0100))[:2] == ({"k": "v"}, "{}")


def test_v1_with_nonzero_end_of_header_is_corrupt():
    data = bytearray(v1_record({"a": "b"}, "{}"))
    data[14] = 1
    with pytest.raises(CorruptRecord, match="end-of-header"):
        decode_record(bytes(data))


@pytest.mark.parametrize("metadata", [{"a\0b": "c"}, {"k": "\0"}, {"\0": "\0\0", "x": ""}])
def test_strings_holding_nul_characters_round_trip_by_their_lengths(metadata):
    data = encode_record(metadata, "{}")
    assert decode_record(data)[0] == metadata


def test_v2_lengths_that_do_not_add_up_are_corrupt():
    import zlib

    data = bytearray(encode_record({"a\0": "b"}, "{}"))
    data[24:28] = struct.pack("<I", 1)  # len("a\0") claimed as 1
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[6:-4])))
    with pytest.raises(CorruptRecord, match="do not add up"):
        decode_record(bytes(data))


@pytest.mark.parametrize("metadata", [{}, {"k": "v", "ключ": "значение"}, {"a\0b": "\0"}])
def test_a_later_writers_extension_area_is_skipped(metadata):
    """docs/format.md: later writers may add tagged entries between the header
    and the metadata block (E bytes); today's readers skip them."""
    import zlib

    plain = encode_record(metadata, '{"x": 1}')
    extension = struct.pack("<HI", 7, 3) + b"abc"
    data = bytearray(plain[:20] + extension + plain[20:])
    data[8:12] = struct.pack("<I", len(extension))
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[6:-4])))
    assert decode_record(bytes(data)) == (metadata, '{"x": 1}', len(data))
    assert record_length(bytes(data)) == len(data)


def test_errors_keep_their_location_through_pickle():
    import pickle

    from shoebox import ArchiveVanished

    error = ChecksumMismatch("checksum mismatch", filename="a.events", offset=46)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ChecksumMismatch
    assert (copy.reason, copy.filename, copy.offset, str(copy)) == (
        "checksum mismatch", "a.events", 46, "a.events, offset 46: checksum mismatch")
    vanished = pickle.loads(pickle.dumps(ArchiveVanished("gone", filename="b.events.open")))
    assert (str(vanished), vanished.filename) == (
        "[Errno 2] gone: 'b.events.open'", "b.events.open")


def test_the_original_module_name_disk_storage_still_imports_the_codecs():
    from shoebox import codec, disk_storage

    assert disk_storage.encode_record is codec.encode_record
    assert disk_storage.CODECS is codec.CODECS
    assert sorted(disk_storage.__all__) == sorted(codec.__all__)
