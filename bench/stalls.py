#!/usr/bin/env python3
"""Stalls in a gateway's request log, kept by `bench/run.sh --keep`.

A stall is a moment when every connection waits at once: a lock held
while a map grows, a slow commit. Percentiles over a whole slice hide it;
the request log shows it. This reads each request line's time and
`latency_us`, buckets them by wall time (100 ms by default), and prints
each bucket whose slowest request took at least --over milliseconds, with
how many handshakes (`status=303`) were logged before it: a stall that
comes back at the same count (a map's growth point, say) is the code's,
one at no fixed count is more likely the machine's. Then the tail of the
whole log.

    python3 bench/stalls.py /tmp/embedgate-bench-XXXX/gateway-sqlite.log
    python3 bench/stalls.py --over 40 --bucket-ms 50 LOG

Standard library only. See bench/README.md.
"""

import argparse
import re
from datetime import datetime

LINE = re.compile(r"^(\S+?)Z? .* status=(\d+) latency_us=(\d+)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log", help="gateway-<backend>.log from a kept work folder")
    p.add_argument("--over", type=float, default=20.0, help="ms (default 20)")
    p.add_argument("--bucket-ms", type=int, default=100, help="bucket width (default 100)")
    args = p.parse_args()

    buckets = {}  # bucket -> [slowest µs, requests, handshakes before]
    handshakes = 0
    latencies = []
    try:
        log = open(args.log, errors="replace")
    except OSError as e:
        raise SystemExit(f"{args.log}: {e.strerror}")
    with log:
        for line in log:
            m = LINE.match(line)
            if not m:
                continue
            t = datetime.fromisoformat(m.group(1)).timestamp()
            us = int(m.group(3))
            latencies.append(us)
            b = int(t * 1000) // args.bucket_ms
            slot = buckets.setdefault(b, [0, 0, handshakes])
            slot[0] = max(slot[0], us)
            slot[1] += 1
            if m.group(2) == "303":
                handshakes += 1
    if not latencies:
        raise SystemExit(f"{args.log}: no request lines with latency_us")

    start = min(buckets)
    for b, (slowest, n, before) in sorted(buckets.items()):
        if slowest >= args.over * 1000:
            at = (b - start) * args.bucket_ms / 1000
            print(
                f"{at:8.1f} s: slowest {slowest / 1000:6.1f} ms, "
                f"{n} requests in the bucket, {before} handshakes before"
            )

    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000

    def over(ms: float) -> int:
        return sum(1 for x in latencies if x >= ms * 1000)

    print(
        f"{len(latencies)} requests, {handshakes} handshakes; "
        f">= 20 ms: {over(20)}, >= 40 ms: {over(40)}, >= 50 ms: {over(50)}; "
        f"p99 {q(0.99):.2f} ms, p99.9 {q(0.999):.2f} ms, slowest {latencies[-1] / 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
