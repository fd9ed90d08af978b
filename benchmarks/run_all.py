"""Run every benchmark script in this folder, one after the other.

Scripts run in the order of :data:`ORDER` first, then any other ``*.py`` file in
this folder alphabetically; files starting with ``_`` (helpers) and this file
are skipped. Each script runs in its own interpreter (this one's), from the
repository root.

Usage::

    python benchmarks/run_all.py                       # everything
    python benchmarks/run_all.py --only codec          # just codec.py
    python benchmarks/run_all.py --json-dir results/   # results/<script>.json each
    python benchmarks/run_all.py -- --repeats 3        # extra options for every script

Every script must accept ``--json PATH``; options after ``--`` go to every script.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Run first, in this order, when present; others follow alphabetically.
ORDER = ("codec.py", "compare.py", "scale.py")


def discover() -> list[Path]:
    present = {p.name: p for p in HERE.glob("*.py")}
    skip = {Path(__file__).name}
    first = [present[name] for name in ORDER if name in present]
    rest = sorted(
        p
        for name, p in present.items()
        if name not in ORDER and name not in skip and not name.startswith("_")
    )
    return first + rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description="Run every benchmark in benchmarks/.")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this script (repeatable)"
    )
    parser.add_argument("--json-dir", metavar="DIR", help="write DIR/<script>.json for each")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    args = parser.parse_args(argv)

    scripts = discover()
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        scripts = [p for p in scripts if p.stem in wanted]
    if args.list:
        for script in scripts:
            print(script.relative_to(ROOT))
        return 0
    if args.json_dir:
        Path(args.json_dir).mkdir(parents=True, exist_ok=True)

    failed = []
    for script in scripts:
        command = [sys.executable, str(script.relative_to(ROOT)), *extra]
        if args.json_dir:
            command += ["--json", str(Path(args.json_dir) / f"{script.stem}.json")]
        print(f"=== {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        status = subprocess.call(command, cwd=ROOT)
        print(
            f"=== {script.name}: exit {status} in {time.monotonic() - started:.1f} s\n", flush=True
        )
        if status:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
