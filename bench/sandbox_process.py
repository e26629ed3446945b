"""The sandbox as the benchmark serves it: its own process, uvicorn on loopback.

    python -m bench.sandbox_process --port 8765 --seed bigcapital:1000 [--latency-ms 50] [--rate thredfi:5]

``--latency-ms`` delays every API answer of every emulator (a ``slow`` fault
that never runs out); ``--rate SYSTEM:N`` refuses that emulator's requests
over N per second with 429 and ``Retry-After`` (``Emulator.limit_rate``).
The admin routes (``/SYSTEM/_admin/...``) are never delayed nor limited: the
benchmark seeds, edits and reads the request log through them.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", action="append", default=[], metavar="SYSTEM:COUNT")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate", action="append", default=[], metavar="SYSTEM:PER_SECOND")
    args = parser.parse_args(argv)

    import uvicorn

    from sandbox.server import Sandbox

    box = Sandbox()
    for spec in args.seed:
        system, _, count = spec.partition(":")
        box[system].seed_fake(int(count))
    for emulator in box.emulators.values():
        if args.latency_ms > 0:
            emulator.faults.add("slow", delay_s=args.latency_ms / 1000, times=None)
    for spec in args.rate:
        system, _, per_second = spec.partition(":")
        box[system].limit_rate(int(per_second))
    uvicorn.run(box.app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
