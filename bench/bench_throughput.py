"""SSE throughput: N small item_progress events then complete, through ``once`` (the http trigger).

The body is generated once into a file and served by bench/sse_server.py with
sendfile, so the server is not the bottleneck (checked by reading the same
stream with a raw socket). events/s = events / (request arrival at the server
-> the scheduler closing the connection after its verdict). On a shared
machine the best of 3 is the figure (the median is shown too). The same bytes
are also fed to the decoder and the verdict in-process, in 64 KiB chunks as
httpcore delivers them, to separate decoding from transport.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from common import (
    READ_CHUNK,
    BenchServer,
    MiB,
    figure,
    flood_body,
    note,
    once_against,
)

from proxbox_scheduler.proxbox.sse import SSEDecoder
from proxbox_scheduler.proxbox.verdict import StreamVerdict

B = "throughput"
TARGET_EPS = 500_000
FLAT_MIB = 5.0
"""RSS counts as flat when the largest run peaks at most this much above the smallest."""


def raw_read(port: int, expect: int) -> float:
    """Seconds for a bare socket to GET the stream and read ``expect`` body bytes: the server's own speed."""
    buf = bytearray(4 * MiB)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /full-update/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        got = len(head.partition(b"\r\n\r\n")[2])
        while got < expect:
            n = sock.recv_into(view)
            if not n:
                raise RuntimeError("server closed early")
            got += n
        return time.monotonic() - start


def decode_in_process(path: Path, repeats: int) -> tuple[float, int]:
    """(CPU seconds, events) to decode and judge the body in-process, best of ``repeats``.

    The chunks are read beforehand; CPU time (not wall time) keeps other load on
    the machine out of the figure.
    """
    with open(path, "rb") as body:
        chunks = list(iter(lambda: body.read(READ_CHUNK), b""))
    best, events = float("inf"), 0
    for _ in range(repeats):
        start = time.thread_time()
        decoder, verdict = SSEDecoder(), StreamVerdict()
        events = 0
        outcome = None
        for chunk in chunks:
            for event in decoder.feed(chunk):
                events += 1
                outcome = verdict.feed(event)
        best = min(best, time.thread_time() - start)
        if outcome is None or not outcome.ok:
            raise RuntimeError(f"in-process decode did not end in success: {outcome}")
    return best, events


def one_size(n: int, repeats: int) -> dict[str, float]:
    """Measure ``n`` item events end to end (best of ``repeats``), server alone and in-process."""
    path = flood_body(n)
    size = path.stat().st_size
    events = n + 3  # two step events before, complete after
    with BenchServer("--stream", str(path)) as server:
        raw = min(raw_read(server.port, size) for _ in range(repeats))
        runs = sorted(once_against(server) for _ in range(repeats))
    verdict_s, exit_s, _, cpu_s = runs[0]
    rss = max(run[2] for run in runs)
    decode_s, decoded = decode_in_process(path, repeats)
    assert decoded == events, (decoded, events)
    label = f"{n:,} events"
    best = f", best of {repeats}" if repeats > 1 else ""
    figure(B, f"server alone, raw socket reader ({label}{best})", size / MiB / raw, "MiB/s")
    figure(B, f"end-to-end events/s ({label}{best})", events / verdict_s, "events/s")
    if repeats > 1:
        median = runs[len(runs) // 2][0]
        figure(B, f"end-to-end events/s ({label}, median of {repeats})", events / median, "events/s")
    figure(B, f"end-to-end MB/s ({label}{best})", size / MiB / verdict_s, "MiB/s")
    figure(B, f"request -> verdict ({label}{best})", verdict_s, "s")
    figure(B, f"request -> process exit ({label}{best})", exit_s, "s")
    figure(B, f"scheduler CPU, whole process incl. startup ({label})", cpu_s, "s")
    figure(B, f"peak RSS ({label}, max of {repeats})", rss, "MiB")
    if repeats > 1:
        note(f"peak RSS of each run: {' / '.join(f'{run[2]:.1f}' for run in runs)} MiB")
    figure(B, f"decoder + verdict in-process, CPU time ({label})", events / decode_s, "events/s")
    return {"eps": events / verdict_s, "rss": rss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--sizes", type=int, nargs="+", help="item event counts (default 100000 1000000)")
    parser.add_argument("--repeats", type=int, help="end-to-end runs per size (default 3, quick 1)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000, 50_000] if args.quick else [100_000, 1_000_000])
    repeats = args.repeats or (1 if args.quick else 3)
    note(f"generating/reusing bodies for {sizes} events (cached under the temp dir)")
    results = {n: one_size(n, repeats) for n in sizes}
    big, small = max(sizes), min(sizes)
    eps = results[big]["eps"]
    figure(B, f"events/s at {big:,}", eps, "events/s", f">= {TARGET_EPS:,}", eps >= TARGET_EPS)
    growth = results[big]["rss"] - results[small]["rss"]
    figure(
        B,
        f"peak RSS growth {small:,} -> {big:,} events",
        growth,
        "MiB",
        f"flat (< {FLAT_MIB:g} MiB)",
        growth < FLAT_MIB,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
