"""Incremental server-sent-events decoder (WHATWG rules): bytes in, events out, no I/O.

Kept apart from the transport, as httpx-sse does, so that it can be tested and
benchmarked on bytes alone. The rules applied are those of the HTML Living
Standard, section 9.2.6 "Interpreting an event stream": CR, LF and CRLF end a
line, a leading BOM is dropped, one space after the colon is removed, ``id``
with NUL is ignored, ``retry`` takes digits only, and an event without its
closing blank line is discarded at the end. How it stays linear in time and
memory whatever the chunking is in bench/RESULTS.md.
"""

from __future__ import annotations

BOM = b"\xef\xbb\xbf"
LF, CR, COLON = 0x0A, 0x0D, 0x3A
WINDOW = 1 << 20
"""Bytes of complete lines split at once; a longer line takes the copy-once path."""

_FIELD_PREFIX = 6
"""Bytes of ``data: `` before a data line's value, allowed for when capping a pending line."""

_NAME_CACHE = 256
"""Distinct event names remembered so that each is decoded once per stream."""


class EventTooLarge(Exception):
    """One event's data passed the cap; the stream cannot be decoded further."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"an SSE event's data exceeded {limit} bytes")


class Event:
    """One dispatched event; ``raw`` is the undecoded data, ``data`` decodes it on demand
    (the verdict parses JSON straight from ``raw``, and only for the events it reads)."""

    __slots__ = ("_data", "event", "id", "raw", "retry")

    def __init__(
        self, event: str = "message", raw: bytes = b"", id: str = "", retry: int | None = None
    ) -> None:
        self.event = event
        self.raw = raw
        self.id = id
        self.retry = retry

    @property
    def data(self) -> str:
        """The data as text (invalid UTF-8 replaced, as browsers do); decoded once."""
        try:
            return self._data
        except AttributeError:
            self._data: str = self.raw.decode("utf-8", "replace")
            return self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.event, self.raw, self.id, self.retry) == (
            other.event,
            other.raw,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = self.raw if len(self.raw) <= 80 else self.raw[:80] + b"..."
        return f"Event(event={self.event!r}, raw={shown!r}, id={self.id!r}, retry={self.retry!r})"


class SSEDecoder:
    """Feed it the body's bytes as they come; it returns the events each chunk completes.

    After ``EventTooLarge`` the decoder's state is undefined: abandon the stream.
    """

    def __init__(self, max_event_bytes: int = 256 * 1024 * 1024, *, window: int = WINDOW) -> None:
        self.max_event_bytes = max_event_bytes
        self._window = window
        self._last_id = ""
        self._etype: str | None = None
        self._data: list[bytes] = []
        self._size = 0  # data bytes of the current event plus one separator per line
        self._event_retry: int | None = None
        self._pending: list[bytes | memoryview] = []  # pieces of a line not yet terminated
        self._pending_len = 0
        self._bom_probe = b""  # first bytes, while they may still be the start of a BOM
        self._at_start = True
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is its CRLF's second half
        self._names: dict[bytes, str] = {}

    def feed(self, chunk: bytes) -> list[Event]:
        """Decode one chunk; return the events completed by it (possibly none)."""
        events: list[Event] = []
        pos = 0
        if self._at_start:
            chunk = self._bom_probe + chunk
            if len(chunk) < len(BOM) and BOM.startswith(chunk):
                self._bom_probe = chunk
                return events
            self._at_start = False
            self._bom_probe = b""
            if chunk.startswith(BOM):
                pos = len(BOM)
        n = len(chunk)
        if pos >= n:
            return events
        if self._skip_lf:
            self._skip_lf = False
            if chunk[pos] == LF:
                pos += 1
        has_cr = b"\r" in chunk
        if self._pending and pos < n:
            end = self._line_end(chunk, pos, has_cr)
            if end < 0:
                self._hold(chunk, pos)
                return events
            self._hold(chunk, pos, end)
            self._complete_pending(events)
            pos = self._after_terminator(chunk, end)
        window = self._window
        while pos < n:
            limit = min(n, pos + window)
            end = chunk.rfind(b"\n", pos, limit)
            if has_cr:
                end = max(end, chunk.rfind(b"\r", pos, limit))
            if end >= 0:
                if chunk[end] == CR:
                    if end + 1 < n and chunk[end + 1] == LF:
                        end += 1
                    elif end + 1 == n:
                        self._skip_lf = True
                block = chunk[pos : end + 1]
                if has_cr:
                    block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                lines = block.split(b"\n")
                lines.pop()
                self._lines(lines, events)
                pos = end + 1
                continue
            end = self._line_end(chunk, limit, has_cr) if limit < n else -1
            if end < 0:
                self._hold(chunk, pos)
                break
            self._hold(chunk, pos, end)
            self._complete_pending(events)
            pos = self._after_terminator(chunk, end)
        return events

    def close(self) -> None:
        """End of stream: per the spec an event without its closing blank line is discarded."""
        self._pending = []
        self._pending_len = 0
        self._data = []
        self._size = 0
        self._etype = None
        self._event_retry = None
        self._bom_probe = b""

    # ------------------------------------------------------------ internals

    @staticmethod
    def _line_end(chunk: bytes, start: int, has_cr: bool) -> int:
        """Index of the first CR or LF at or after ``start``, or -1."""
        end = chunk.find(b"\n", start)
        if has_cr:
            cr = chunk.find(b"\r", start, len(chunk) if end < 0 else end)
            if cr >= 0:
                return cr
        return end

    def _after_terminator(self, chunk: bytes, end: int) -> int:
        """Position after the line terminator at ``end`` (CRLF counts as one)."""
        if chunk[end] == CR:
            if end + 1 == len(chunk):
                self._skip_lf = True
            elif chunk[end + 1] == LF:
                return end + 2
        return end + 1

    def _hold(self, chunk: bytes, start: int, end: int | None = None) -> None:
        """Keep ``chunk[start:end]`` as a piece of the pending line, copying only small pieces."""
        stop = len(chunk) if end is None else end
        if start == 0 and stop == len(chunk):
            piece: bytes | memoryview = chunk
        elif stop - start < self._window:
            piece = chunk[start:stop]
        else:
            piece = memoryview(chunk)[start:stop]
        self._pending.append(piece)
        self._pending_len += stop - start
        if self._size + self._pending_len - _FIELD_PREFIX > self.max_event_bytes:
            raise EventTooLarge(self.max_event_bytes)

    def _complete_pending(self, events: list[Event]) -> None:
        """The pending line got its terminator: process it."""
        pieces, total = self._pending, self._pending_len
        self._pending, self._pending_len = [], 0
        if total < self._window:
            self._lines([b"".join(pieces)], events)
        else:
            self._long_line(pieces, events)

    def _long_line(self, pieces: list[bytes | memoryview], events: list[Event]) -> None:
        """A line too long to split: find its field in the first bytes, copy its value once."""
        head = b""
        for piece in pieces:
            head += bytes(piece[: 16 - len(head)])
            if len(head) >= 16:
                break
        colon = head.find(b":")
        if colon < 0:  # no colon: the whole line is the field name, with an empty value
            colon = len(head) if len(head) == sum(len(p) for p in pieces) else 0
        name = head[:colon]
        if name not in (b"data", b"event", b"id", b"retry"):
            return  # a comment or an unknown field
        skip = colon + 2 if head[colon + 1 : colon + 2] == b" " else colon + 1
        views: list[bytes | memoryview] = []
        for piece in pieces:
            if skip >= len(piece):
                skip -= len(piece)
                continue
            views.append(memoryview(piece)[skip:] if skip else piece)
            skip = 0
        value = b"".join(views)
        del views, pieces[:]
        if name != b"data":  # re-add the one space the field's value lost: _lines strips one
            self._lines([name + b": " + value], events)
            return
        self._size += len(value) + 1
        if self._size - 1 > self.max_event_bytes:
            raise EventTooLarge(self.max_event_bytes)
        self._data.append(value)

    def _event_name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = raw.decode("utf-8", "replace")
            if len(self._names) < _NAME_CACHE:
                self._names[raw] = name
        return name

    def _lines(self, lines: list[bytes], events: list[Event]) -> None:
        """The hot loop: apply complete lines, dispatching an event at each blank one."""
        data = self._data
        size = self._size
        etype = self._etype
        retry = self._event_retry
        cap = self.max_event_bytes + 1  # ``size`` counts one separator more than the data has
        names = self._names
        append = events.append
        for line in lines:
            if not line:
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    append(Event(etype or "message", raw, self._last_id, retry))
                    data = []
                    size = 0
                etype = None
                retry = None
            elif line[:5] == b"data:":
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value) + 1
                if size > cap:
                    raise EventTooLarge(self.max_event_bytes)
                data.append(value)
            elif line[:6] == b"event:":
                value = line[7:] if line[6:7] == b" " else line[6:]
                etype = names.get(value) or self._event_name(value)
            elif line[0] != COLON:  # a line starting with ':' is a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":  # "data" without a colon: an empty data line
                    size += 1
                    data.append(b"")
                elif name == b"event":
                    etype = None
                elif name == b"id":
                    if b"\0" not in value:
                        self._last_id = value.decode("utf-8", "replace")
                elif name == b"retry" and value.isdigit():
                    retry = int(value)
        self._data = data
        self._size = size
        self._etype = etype
        self._event_retry = retry
