#!/usr/bin/env python3
"""Memory growth and p99 drift of a soak, from `turnstile bench --json`."""
import json
import sys

summary = json.load(open(sys.argv[1]))
windows = [w for w in summary["windows"] if w["server_resident_bytes"] > 0]
# The first minute warms up (caches, first allocations of every actor).
steady = [w for w in windows if w["end_seconds"] > 60] or windows
xs = [w["end_seconds"] / 3600.0 for w in steady]
ys = [w["server_resident_bytes"] / 2**20 for w in steady]
n = len(xs)


def fit(xs, ys):
    """Least-squares slope of ys over xs (MiB per hour)."""
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else 0.0


slope = fit(xs, ys)
# Ended holds are kept for 10 minutes (HOLD_RETENTION_MS), so memory climbs for that long by
# design; the second half of a 30-minute run shows whether it then levels off.
half = n // 2
late_slope = fit(xs[half:], ys[half:])


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0


tenth = max(1, n // 10)
first_p99 = median([w["hold_p99_us"] for w in steady[:tenth]])
last_p99 = median([w["hold_p99_us"] for w in steady[-tenth:]])
first_rate = median([w["operations_per_second"] for w in steady[:tenth]])
last_rate = median([w["operations_per_second"] for w in steady[-tenth:]])
print(f"duration: {summary['duration_seconds']:.0f} s, concurrency {summary['concurrency']}, "
      f"{summary['writes_per_second']:.0f} writes/s, {summary['reads_per_second']:.0f} reads/s")
print(f"errors by code: {summary['errors_by_code']}")
print(f"resident memory after warm-up: {ys[0]:.1f} MiB, at the end: {ys[-1]:.1f} MiB, "
      f"linear fit {slope:+.1f} MiB/hour over {n} windows, {late_slope:+.1f} MiB/hour over the last {n - half}")
print(f"resident memory at the middle of the run: {ys[half]:.1f} MiB, peak: {max(ys):.1f} MiB")
print(f"hold p99, first tenth vs last tenth of the run (medians of windows): "
      f"{first_p99 / 1000:.2f} ms -> {last_p99 / 1000:.2f} ms ({(last_p99 / first_p99 - 1) * 100 if first_p99 else 0:+.0f}%)")
print(f"throughput, first tenth vs last tenth: {first_rate:.0f} -> {last_rate:.0f} ops/s")
