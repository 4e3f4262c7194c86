"""The SSE decoder against the WHATWG parsing rules, any chunking, the size cap and long lines."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxbox_scheduler.proxbox.sse import Event, EventTooLarge, SSEDecoder


def decode(*chunks: bytes, **kw: int) -> list[Event]:
    decoder = SSEDecoder(**kw)
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    decoder.close()
    return events


def pairs(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in events]


def bytewise(data: bytes, **kw: int) -> list[Event]:
    return decode(*(data[i : i + 1] for i in range(len(data))), **kw)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    stream = eol.join([b"event: step", b"data: a", b"", b"data: b", b"", b""])
    assert pairs(decode(stream)) == [("step", "a"), ("message", "b")]
    assert pairs(bytewise(stream)) == [("step", "a"), ("message", "b")]


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\n"
    assert pairs(decode(stream)) == [("message", "a\nb\nc")]


def test_cr_at_chunk_end_and_lf_at_next_start_is_one_line_end() -> None:
    events = decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert pairs(events) == [("message", "a\nb")]


def test_cr_at_chunk_end_followed_by_a_new_line_start() -> None:
    assert pairs(decode(b"data: a\r", b"\r")) == [("message", "a")]
    assert pairs(decode(b"data: a\r", b"", b"data: b\n\n")) == [("message", "a\nb")]


def test_leading_bom_is_stripped_even_when_split() -> None:
    assert pairs(decode(b"\xef\xbb\xbfdata: x\n\n")) == [("message", "x")]
    assert pairs(decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n")) == [("message", "x")]


def test_only_the_first_bom_is_stripped() -> None:
    # A second BOM makes the first field name "\ufeffdata", which is unknown.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    assert pairs(decode(b"data: \xef\xbb\xbfx\n\n")) == [("message", "\ufeffx")]


def test_comments_are_ignored() -> None:
    stream = b": keepalive\n\n:\ndata: x\n: inside\n\n"
    assert pairs(decode(stream)) == [("message", "x")]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert decode(b"data: one\ndata:two\ndata:  three\n\n")[0].data == "one\ntwo\n three"


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert decode(b"data:x\n\n")[0].data == "x"
    assert decode(b"data:  x\n\n")[0].data == " x"
    assert decode(b"event:step\ndata\n\n")[0].event == "step"


def test_empty_data_dispatches_an_empty_event() -> None:
    assert pairs(decode(b"data\n\n")) == [("message", "")]
    assert pairs(decode(b"data:\n\n")) == [("message", "")]
    assert pairs(decode(b"data:\ndata:\n\n")) == [("message", "\n")]


def test_no_data_no_event_and_type_resets() -> None:
    assert decode(b"event: step\n\ndata: x\n\n")[0].event == "message"
    assert decode(b"event: step\nevent\ndata: x\n\n")[0].event == "message"


def test_id_persists_and_null_ids_are_ignored() -> None:
    events = decode(b"id: 7\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_id_without_data_still_sets_the_last_id() -> None:
    assert decode(b"id: 3\n\ndata: a\n\n")[0].id == "3"


def test_retry_only_with_ascii_digits() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry: \n\n")
    assert [e.retry for e in events] == [1500, None]


def test_unknown_fields_are_ignored() -> None:
    assert pairs(decode(b"foo: bar\ndata: a\nDATA: b\n\n")) == [("message", "a")]


def test_event_without_closing_blank_line_is_discarded_at_eof() -> None:
    assert pairs(decode(b"data: a\n\ndata: b\n")) == [("message", "a")]
    assert pairs(decode(b"data: a\n\ndata: b")) == [("message", "a")]


def test_invalid_utf8_is_replaced() -> None:
    assert decode(b"data: \xff\n\n")[0].data == "\ufffd"


def test_data_is_decoded_once_on_demand() -> None:
    event = decode(b'event: step\ndata: {"a": [1, 2]}\n\n')[0]
    assert event.raw == b'{"a": [1, 2]}'
    assert event.data is event.data


# ---------------------------------------------------------------- chunking

SAMPLE = (
    b"\xef\xbb\xbf: hello\r\n"
    b"event: step\r\n"
    b'data: {"step": "devices"}\r\n'
    b"\r\n"
    b"id: 42\n"
    b"retry: 100\n"
    b"data: line one\r"
    b"data:line two\r"
    b"\r"
    b"event:complete\n"
    b"data\n"
    b"\n"
    b"data: tail without blank line"
)


def test_every_single_split_point_gives_the_same_events() -> None:
    whole = decode(SAMPLE)
    assert len(whole) == 3
    for cut in range(len(SAMPLE) + 1):
        assert decode(SAMPLE[:cut], SAMPLE[cut:]) == whole, cut


def test_byte_by_byte_gives_the_same_events() -> None:
    assert bytewise(SAMPLE) == decode(SAMPLE)


no_eol = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
line = st.one_of(
    st.sampled_from(
        [b"", b":", b": keepalive", b"data", b"event", b"id: 1", b"id: \x00", b"retry: 5", b"data:"]
    ),
    st.builds(lambda v: b"data: " + v, no_eol),
    st.builds(lambda v: b"event:" + v, st.sampled_from([b"step", b" complete", b" error", b""])),
    st.builds(lambda v: b"retry:" + v, st.sampled_from([b"10", b" 7", b"1a", b"", b"\xd9\xa3"])),
    no_eol,
)
streams = st.builds(
    lambda lines, eols, bom: (
        (b"\xef\xbb\xbf" if bom else b"") + b"".join(ln + eols[i % len(eols)] for i, ln in enumerate(lines))
    ),
    st.lists(line, max_size=30),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=1, max_size=5),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    stream=streams,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    window=st.sampled_from([4, 16, 1 << 20]),
)
def test_random_chunking_equals_one_shot(stream: bytes, cuts: list[int], window: int) -> None:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert decode(*chunks, window=window) == decode(stream)


def reference(stream: bytes) -> list[tuple[str, str, str, int | None]]:
    """The WHATWG algorithm written literally on text, to check the fast decoder against."""
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end: discarded
    out, data, etype, last_id, retry = [], "", "", "", None
    for line in lines:
        if not line:
            if data:
                out.append((etype or "message", data.removesuffix("\n"), last_id, retry))
            data, etype, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            etype = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return out


@settings(max_examples=300, deadline=None)
@given(stream=streams, window=st.sampled_from([4, 1 << 20]))
def test_decoder_matches_the_literal_algorithm(stream: bytes, window: int) -> None:
    events = decode(stream, window=window)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == reference(stream)


# ---------------------------------------------------------------- size cap and long lines


def test_cap_allows_exactly_the_limit_and_raises_past_it() -> None:
    exact = b"data: " + b"x" * 1024 + b"\n\n"
    assert len(decode(exact, max_event_bytes=1024)[0].raw) == 1024
    with pytest.raises(EventTooLarge):
        decode(b"data: " + b"x" * 1025 + b"\n\n", max_event_bytes=1024)


def test_cap_counts_every_data_line_of_one_event() -> None:
    multi = b"data: " + b"x" * 600 + b"\ndata: " + b"y" * 600 + b"\n\n"
    with pytest.raises(EventTooLarge):
        decode(multi, max_event_bytes=1024)
    # The cap is per event: two events of 600 bytes each are fine.
    two = b"data: " + b"x" * 600 + b"\n\ndata: " + b"y" * 600 + b"\n\n"
    assert len(decode(two, max_event_bytes=1024)) == 2


def test_cap_raises_before_buffering_far_beyond_it() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed(b"data: ")
    with pytest.raises(EventTooLarge):
        for _ in range(100):  # never terminated: only the pending line's size can trip the cap
            decoder.feed(b"x" * 100)
    assert decoder._pending_len < 1024 + 200


def test_cap_on_a_single_huge_unterminated_chunk() -> None:
    with pytest.raises(EventTooLarge):
        SSEDecoder(max_event_bytes=1024).feed(b"data: " + b"x" * 10_000)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20, 8 << 20])
def test_several_megabyte_line_decodes_whole(chunk: int) -> None:
    value = bytes(range(32, 127)) * (5 * 1024 * 1024 // 95)
    stream = b"event: complete\r\ndata: " + value + b"\r\n\r\n"
    pieces = [stream[i : i + chunk] for i in range(0, len(stream), chunk)] if chunk > 1 else None
    if pieces is None:  # one byte at a time is too slow for 5 MB; split around the edges instead
        pieces = [stream[:3], stream[3:20], stream[20:-3], stream[-3:-2], stream[-2:]]
    events = decode(*pieces, window=1 << 16)
    assert len(events) == 1
    assert events[0].event == "complete"
    assert events[0].raw == value


def test_long_lines_of_other_fields_and_comments() -> None:
    comment = b": " + b"k" * 5000 + b"\n"
    long_id = b"id: " + b"7" * 5000 + b"\n"
    events = decode(comment + long_id + b"data: a\n\n", window=64)
    assert pairs(events) == [("message", "a")]
    assert events[0].id == "7" * 5000


def test_long_unknown_field_is_ignored() -> None:
    assert pairs(decode(b"x" * 5000 + b": y\ndata: a\n\n", window=64)) == [("message", "a")]
