"""Run `headroom operator` under pyinstrument with async mode off, so the profile shows where
the event loop spends CPU (idle time lands in the loop's `select`), not where tasks wait.

    python -m tests.bench.profile_operator OUT_PREFIX operator-args...

Writes OUT_PREFIX.txt (text tree) and OUT_PREFIX.pyisession (reload with
`pyinstrument --load FILE -r text --show-all`) when the operator exits (SIGTERM ends it
cleanly).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyinstrument import Profiler

from headroom import cli


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        code = cli.main(args)
    finally:
        profiler.stop()
        session = profiler.last_session
        assert session is not None
        session.save(str(out.with_suffix(".pyisession")))
        out.with_suffix(".txt").write_text(profiler.output_text(show_all=False))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
