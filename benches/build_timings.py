#!/usr/bin/env python3
"""Where a build's time went, from the report of `cargo build --timings`.

    cargo build --workspace --tests --timings     # writes target/cargo-timings/cargo-timing-*.html
    python3 benches/build_timings.py target/cargo-timings/cargo-timing.html

Prints the CPU seconds of every compiled unit added up, split between the workspace's crates
(named turnstile*) and their dependencies, and the longest units. docs/ARCHITECTURE.md, "Tests".
"""
import json
import re
import sys

SHOWN = 15


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    html = open(sys.argv[1], encoding="utf-8").read()
    found = re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S)
    if not found:
        print(f"{sys.argv[1]}: no UNIT_DATA (not a cargo timing report?)", file=sys.stderr)
        return 1
    units = json.loads(found.group(1))
    ours = [unit for unit in units if unit["name"].startswith("turnstile")]
    total = sum(unit["duration"] for unit in units)
    own = sum(unit["duration"] for unit in ours)
    print(f"units: {len(units)}, CPU {total:.0f} s: workspace crates {own:.0f} s, dependencies {total - own:.0f} s")
    print(f"longest {SHOWN}:")
    for unit in sorted(units, key=lambda unit: -unit["duration"])[:SHOWN]:
        target = unit.get("target", "").strip()
        print(f"  {unit['duration']:6.1f} s  {unit['name']} {unit['version']} {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
