"""`python -m headroom_dev.sim` (`make simulate`): compare placement policies on seeded traces."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from headroom_dev.sim.report import Config, run_all, write


def main(argv: list[str] | None = None) -> int:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m headroom_dev.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--runs", type=int, default=defaults.runs)
    parser.add_argument("--days", type=float, default=defaults.days)
    parser.add_argument("--per-day", type=float, default=defaults.per_day)
    parser.add_argument("--sweep-runs", type=int, default=defaults.sweep_runs)
    parser.add_argument("--out", type=Path, default=Path("results/simulation"))
    args = parser.parse_args(argv)
    cfg = Config(
        seed=args.seed,
        runs=args.runs,
        days=args.days,
        per_day=args.per_day,
        sweep_runs=args.sweep_runs,
    )
    started = time.monotonic()
    print(f"quota simulation: seed {cfg.seed}, {cfg.runs} runs", flush=True)
    table, bounds, sweep = run_all(cfg)
    text = write(args.out, cfg, table, bounds, sweep)
    print(text)
    print(f"written to {args.out}/ (table.md, results.json, productivity.png)", file=sys.stderr)
    print(f"took {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
