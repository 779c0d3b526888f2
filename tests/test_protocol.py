"""Properties of the console protocol parser (targets/protocol.py, docs/protocol.md)."""

import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from targets.protocol import (
    KINDS,
    MAGIC,
    MAX_LINE,
    Anomaly,
    RecordParser,
    frame,
    percent_decode,
    percent_encode,
)

NONCE = "0123456789abcdef"
OTHER_NONCE = "fedcba9876543210"

keys = st.from_regex(r"[A-Za-z0-9_.]{1,12}", fullmatch=True)
field_lists = st.lists(st.tuples(keys, st.binary(max_size=80)), max_size=6, unique_by=lambda kv: kv[0])
record_specs = st.lists(st.tuples(st.sampled_from(sorted(KINDS)), field_lists), min_size=1, max_size=8)
# Noise as a console shows it: kernel lines, CRs, stray magic, and arbitrary bytes.
noise_pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\n", b"\r\n", b"[    1.234567] random: crng init done\n", MAGIC, b"PCERT1",
                     b"PCERT1 " + NONCE.encode() + b" 1 out", b"%", b"="]),
)
noise = st.lists(noise_pieces, max_size=4).map(b"".join)


def build(specs, nonce=NONCE, first_seq=0):
    """Frame the records of `specs` with consecutive sequence numbers."""
    return [frame(nonce, first_seq + i, kind, fields) for i, (kind, fields) in enumerate(specs)]


def parse(data, chunks=None, nonce=NONCE):
    """Feed `data` whole or cut at `chunks` offsets; return (records, anomalies)."""
    parser = RecordParser(nonce)
    cuts = sorted(set(c for c in (chunks or []) if 0 < c < len(data)))
    records = []
    for lo, hi in zip([0] + cuts, cuts + [len(data)]):
        records += parser.feed(data[lo:hi])
    parser.finish()
    return records, parser.anomalies


def test_encoding_keeps_exactly_the_safe_set():
    safe = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._,:/+-@")
    for byte in range(256):
        encoded = percent_encode(bytes([byte]))
        assert encoded == (chr(byte) if byte in safe else "%%%02X" % byte)


@given(st.binary(max_size=300))
def test_percent_roundtrip(data):
    encoded = percent_encode(data)
    assert " " not in encoded and "\n" not in encoded
    assert percent_decode(encoded) == data


@pytest.mark.parametrize("bad", ["a b", "%4", "%4g", "%4a", "é", "a=b", "%"])
def test_percent_decode_rejects_what_the_encoder_never_writes(bad):
    with pytest.raises(ValueError, match="malformed percent-encoded value"):
        percent_decode(bad)


def test_frame_layout_and_crc():
    line = frame(NONCE, 7, "result", [("verdict", "PASS"), ("reason", "")])
    body, crc = line[:-1].rsplit(b" ", 1)
    assert body == b"PCERT1 0123456789abcdef 7 result verdict=PASS reason="
    assert crc == b"%08x" % zlib.crc32(body)
    assert line.endswith(b"\n")


@pytest.mark.parametrize("bad", [dict(key="a b"), dict(key=""), dict(key="a=b"), dict(kind="o ut"), dict(nonce="")])
def test_frame_rejects_what_cannot_be_one_line(bad):
    args = dict(nonce=NONCE, kind="out", key="ok") | bad
    with pytest.raises(ValueError, match="frame:"):
        frame(args["nonce"], 0, args["kind"], [(args["key"], "v")])


@pytest.mark.parametrize("bad", ["", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdefa", None])
def test_parser_needs_a_well_formed_nonce(bad):
    with pytest.raises(ValueError, match="nonce must be 16 lower-case hex digits"):
        RecordParser(bad)


@given(record_specs)
def test_roundtrip(specs):
    lines = build(specs)
    records, anomalies = parse(b"".join(lines))
    assert anomalies == []
    assert [r.seq for r in records] == list(range(len(specs)))
    assert [(r.kind, r.raw_fields) for r in records] == [(k, dict(f)) for k, f in specs]
    assert [r.fields for r in records] == [{k: v.decode("utf-8", "replace") for k, v in f} for _, f in specs]
    offset = 0
    for record, line in zip(records, lines):
        assert (record.start, record.end) == (offset, offset + len(line))
        offset += len(line)


@given(record_specs, st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_any_chunking_gives_the_same_records(specs, cuts):
    data = b"".join(build(specs))
    assert parse(data, cuts) == parse(data)


def test_byte_by_byte_feeding_keeps_partial_lines():
    data = b"noise" + b"".join(build([("start", [("proto", b"1")]), ("end", [("ran", b"0")])]))
    records, anomalies = parse(data, list(range(len(data))))
    assert [r.kind for r in records] == ["start", "end"] and anomalies == []


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(record_specs, st.data())
def test_noise_between_records_changes_nothing_but_offsets(specs, data):
    lines = build(specs)
    noises = [data.draw(noise) for _ in range(len(lines) + 1)]
    stream, starts = b"", []
    for n, line in zip(noises, lines):
        stream += n
        starts.append(len(stream))
        stream += line
    stream += noises[-1]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    records, anomalies = parse(stream, cuts)
    assert [r.seq for r in records] == list(range(len(specs)))
    assert [(r.start, r.end) for r in records] == [(s, s + len(l)) for s, l in zip(starts, lines)]
    assert all(stream[r.start:r.end] == line for r, line in zip(records, lines))
    if stream.count(MAGIC) == len(lines):  # no frame start but the genuine ones
        assert anomalies == []


@given(field_lists, st.data())
def test_a_flipped_byte_is_rejected(fields, data):
    good = frame(NONCE, 0, "out", fields)
    pos = data.draw(st.integers(0, len(good) - 2), label="pos")  # any byte but the line end
    flip = data.draw(st.integers(1, 255), label="flip")
    bad = bytearray(good)
    bad[pos] ^= flip
    records, anomalies = parse(bytes(bad))
    assert records == []
    if MAGIC in bad:
        assert anomalies and anomalies[0].offset == bad.find(MAGIC)


def test_flipped_record_is_reported_with_offset_and_excerpt():
    good = frame(NONCE, 0, "start", [("proto", "1")])
    bad = good.replace(b"proto=1", b"proto=2")
    records, anomalies = parse(b"kernel: hello\n" + bad)
    assert records == []
    assert anomalies == [Anomaly(14, "CRC mismatch", bad.rstrip(b"\n"))]


@given(record_specs)
def test_wrong_nonce_is_rejected_and_does_not_consume_a_sequence_number(specs):
    forged = frame(OTHER_NONCE, 0, "result", [("verdict", "PASS")])
    records, anomalies = parse(forged + b"".join(build(specs)))
    assert [r.seq for r in records] == list(range(len(specs)))
    assert [(a.offset, a.reason) for a in anomalies] == [(0, f"wrong nonce '{OTHER_NONCE}'")]


@given(record_specs, st.data())
def test_replayed_record_is_rejected(specs, data):
    lines = build(specs)
    replayed = data.draw(st.sampled_from(lines))
    where = data.draw(st.integers(lines.index(replayed) + 1, len(lines)))
    stream = b"".join(lines[:where]) + replayed + b"".join(lines[where:])
    records, anomalies = parse(stream)
    assert [r.seq for r in records] == list(range(len(specs)))
    assert len(anomalies) == 1
    assert anomalies[0].reason.startswith("duplicate or out-of-order sequence number")
    assert anomalies[0].offset == len(b"".join(lines[:where]))
    # The number it repeats: the accepted record it may have been displaced by.
    assert anomalies[0].repeats == lines.index(replayed)


def test_sequence_gap_is_rejected_then_resynchronised():
    lines = build([("start", []), ("begin", []), ("out", []), ("end", [])])
    records, anomalies = parse(lines[0] + lines[2] + lines[3])
    assert [r.seq for r in records] == [0, 3]
    assert [a.reason for a in anomalies] == ["sequence gap: got 2, expected 1"]
    assert anomalies[0].repeats is None


def test_new_boot_accepts_a_second_start():
    first_boot = b"".join(build([("start", []), ("begin", [])]))
    second_boot = b"".join(build([("start", []), ("end", [])]))
    parser = RecordParser(NONCE)
    assert len(parser.feed(first_boot)) == 2
    parser.new_boot()
    assert [r.seq for r in parser.feed(second_boot)] == [0, 1]
    assert parser.anomalies == []


@pytest.mark.parametrize("ending", [b"\r\n", b"\r\r\n"])
def test_tty_line_endings_are_accepted(ending):
    line = frame(NONCE, 0, "start", [("proto", "1")])
    stream = line[:-1] + ending
    records, anomalies = parse(stream)
    assert anomalies == [] and (records[0].start, records[0].end) == (0, len(stream))


def test_record_after_kernel_text_on_the_same_line():
    line = frame(NONCE, 0, "start", [("proto", "1")])
    records, anomalies = parse(b"[    0.5] virtio: x" + line)
    assert records[0].start == 19 and anomalies == []


def test_value_ending_in_magic_does_not_split_the_record():
    line = frame(NONCE, 0, "out", [("data", b"PCERT1"), ("idx", b"0")])
    assert MAGIC in line[7:]
    records, anomalies = parse(line)
    assert records[0].raw_fields == {"data": b"PCERT1", "idx": b"0"} and anomalies == []


def test_broken_record_before_a_good_one_on_the_same_line():
    good = frame(NONCE, 0, "start", [])
    records, anomalies = parse(b"PCERT1 truncated " + good)
    assert [r.seq for r in records] == [0]
    assert [(a.offset, a.excerpt) for a in anomalies] == [(0, b"PCERT1 truncated ")]


@pytest.mark.parametrize("body, reason", [
    (b"PCERT1 %s 0 begin idx" % NONCE.encode(), "malformed field 'idx'"),
    (b"PCERT1 %s 0 begin i-d=1" % NONCE.encode(), "malformed field 'i-d=1'"),
    (b"PCERT1 %s 0 begin id=a%%4" % NONCE.encode(), "malformed field 'id=a%4'"),
    (b"PCERT1 %s 0 begin id=a\"b" % NONCE.encode(), "malformed field 'id=a\"b'"),
    (b"PCERT1 %s 0 begin id=1 id=2" % NONCE.encode(), "duplicate field 'id'"),
    (b"PCERT1 %s 0 begin  id=1" % NONCE.encode(), "malformed field ''"),
    (b"PCERT1 %s 0 bogus id=1" % NONCE.encode(), "unknown record kind 'bogus'"),
    (b"PCERT1 %s 00 begin id=1" % NONCE.encode(), "malformed sequence number '00'"),
    (b"PCERT1 %s -1 begin id=1" % NONCE.encode(), "malformed sequence number '-1'"),
])
def test_intact_but_malformed_frames_are_rejected(body, reason):
    line = body + b" %08x\n" % zlib.crc32(body)
    records, anomalies = parse(line)
    assert records == [] and [a.reason for a in anomalies] == [reason]


def test_rejected_field_still_consumes_its_sequence_number():
    body = b"PCERT1 %s 0 start bad" % NONCE.encode()
    stream = body + b" %08x\n" % zlib.crc32(body) + frame(NONCE, 1, "end", [])
    records, anomalies = parse(stream)
    assert [r.seq for r in records] == [1] and len(anomalies) == 1


def test_truncated_trailing_record_is_reported_by_finish():
    line = frame(NONCE, 0, "start", [])
    parser = RecordParser(NONCE)
    assert parser.feed(b"boot\n" + line[:-5]) == []
    found = parser.finish()
    assert [(a.offset, a.reason.split(":")[0]) for a in found] == [(5, "truncated record")]
    assert parser.anomalies == found and parser.finish() == []
    with pytest.raises(ValueError, match="after finish"):
        parser.feed(b"x")


def test_over_long_line_is_cut_with_bounded_memory_and_parsing_goes_on():
    parser = RecordParser(NONCE)
    parser.feed(b"PCERT1 " + NONCE.encode())
    for _ in range(40):  # 4 MB without a line end
        assert parser.feed(b"A" * 100_000) == []
        assert len(parser._pending) <= MAX_LINE  # private, but the bound is the point
    records = parser.feed(b"\n" + frame(NONCE, 0, "start", []))
    assert [r.kind for r in records] == ["start"]
    assert [a.offset for a in parser.anomalies] == [0]
    assert parser.anomalies[0].reason.startswith("record longer than")


def test_long_noise_without_magic_is_not_an_anomaly():
    records, anomalies = parse(b"x" * (3 * MAX_LINE) + frame(NONCE, 0, "start", []))
    assert [r.start for r in records] == [3 * MAX_LINE] and anomalies == []


garbage_pieces = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([MAGIC, NONCE.encode(), b" ", b"\n", b"\r", b"=", b"%", b"%4", b"%41", b"0", b"7",
                     b"start", b"out", b"deadbeef", b"k=v"]),
)


@given(st.lists(garbage_pieces, max_size=30).map(b"".join), st.lists(st.integers(0, 900), max_size=8))
def test_garbage_never_raises(data, cuts):
    records, anomalies = parse(data, cuts)
    assert all(isinstance(a, Anomaly) for a in anomalies)
    assert all(r.seq == i for i, r in enumerate(records))


@given(st.lists(garbage_pieces.filter(lambda p: b"\n" not in p), max_size=20).map(b"".join))
def test_intact_frames_with_garbage_inside_never_raise(body):
    # A correct CRC gets garbage past the integrity check into the field parser.
    body = b"PCERT1 " + NONCE.encode() + b" 0 " + body
    assume(b"\n" not in body)
    line = body + b" %08x\n" % zlib.crc32(body)
    records, anomalies = parse(line)
    assert len(records) + len(anomalies) >= 1
