"""Issue 10: event:/id: values longer than the decoder's line window lose exactly one leading space."""

from __future__ import annotations

import pytest

from proxbox_scheduler.proxbox.sse import SSEDecoder


@pytest.mark.parametrize("spaces", [0, 1, 2, 3])
def test_long_event_and_id_values_keep_all_but_one_leading_space(spaces: int) -> None:
    name = " " * spaces + "e" * 40
    ident = " " * spaces + "i" * 40
    stream = f"event:{name}\nid:{ident}\ndata: x\n\n".encode()
    short = SSEDecoder(window=1 << 20).feed(stream)
    long = SSEDecoder(window=8).feed(stream)
    expected_name, expected_id = name.removeprefix(" "), ident.removeprefix(" ")
    assert [(e.event, e.id) for e in short] == [(expected_name, expected_id)]
    assert [(e.event, e.id) for e in long] == [(expected_name, expected_id)]
