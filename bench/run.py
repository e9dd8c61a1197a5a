"""Run every benchmark: ``.venv/bin/python bench/run.py [name ...] [--option ...]`` (``make bench``).

Each module in MODULES is ``bench.<name>`` with a ``main(argv) -> int``; each
prints its figures as ratios to a baseline measured in the same run. Options
after the names go to each benchmark named: ``bench/run.py signin --profile passkey``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("signin", "oidc_token", "exchange", "eproof")


def main(argv: list[str]) -> int:
    # Run as a script, only bench/ is on the path; the benchmarks import bench.* and tests.*.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split] or list(MODULES), argv[split:]
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        status = max(status, int(module.main(options)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
