"""Run `headroom operator` under pyinstrument with async mode off, so the profile shows where
the event loop spends CPU (idle time lands in the loop's `select`), not where tasks wait.

    python -m tests.bench.profile_operator OUT_PREFIX operator-args...

Sampling starts when the process receives SIGUSR1 (the benchmark sends it just before it walls
the pods, so the profile is the failover wave's, not the setup's), and at once when
HEADROOM_PROFILE_ALL=1. Writes OUT_PREFIX.txt (text tree) and OUT_PREFIX.pyisession (reload
with `pyinstrument --load FILE -r text --show-all`) when the operator exits (SIGTERM ends it
cleanly).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from pyinstrument import Profiler

from headroom import cli


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    profiler = Profiler(interval=0.001, async_mode="disabled")

    def start(_signum: int = 0, _frame: FrameType | None = None) -> None:
        if not profiler.is_running:
            profiler.start()

    signal.signal(signal.SIGUSR1, start)
    if os.environ.get("HEADROOM_PROFILE_ALL") == "1":
        start()
    try:
        code = cli.main(args)
    finally:
        if profiler.is_running:
            profiler.stop()
        session = profiler.last_session
        if session is not None:
            session.save(str(out.with_suffix(".pyisession")))
            out.with_suffix(".txt").write_text(profiler.output_text(show_all=False))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
