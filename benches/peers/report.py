#!/usr/bin/env python3
"""Report of benches/peers.sh: reads the figures the script gathered and prints the comparison.

Usage: report.py OUT_DIR
  OUT_DIR/figures.txt      key=value lines written by peers.sh (Redis, PostgreSQL, machine, CPU)
  OUT_DIR/turnstile-*.json `turnstile bench --json` summaries
Writes OUT_DIR/results.json and OUT_DIR/results.md and prints the markdown to stdout.
"""

import json
import os
import sys


def load_figures(path):
    figures = {}
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                figures[key] = value
    return figures


def number(figures, key):
    try:
        return float(figures[key])
    except (KeyError, ValueError):
        return None


def load_bench(out, name):
    path = os.path.join(out, f"turnstile-{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def op(summary, name):
    if summary is None:
        return None
    return summary.get("operations", {}).get(name)


def ok_per_second(summary, name):
    """Successful operations per second (the bench's count includes failed calls)."""
    row = op(summary, name)
    if row is None:
        return 0.0
    return (row["count"] - row["errors"]) / summary["duration_seconds"]


def fmt(value, digits=0, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def ms(micros):
    return None if micros is None else micros / 1000.0


def main():
    out = sys.argv[1]
    figures = load_figures(os.path.join(out, "figures.txt"))
    a = load_bench(out, "a-writes")
    b = load_bench(out, "b-hot-confirm")
    c = load_bench(out, "c-reads100")
    d_writes = load_bench(out, "d-writes")
    d_reads = load_bench(out, "d-reads")
    e = load_bench(out, "e-hold-only")
    f = load_bench(out, "f-health-only")
    g = load_bench(out, "g-stream-hold-only")

    redis_rps = number(figures, "redis_rps")
    pg_book_tps = number(figures, "pg_book_tps")

    a_holds = ok_per_second(a, "hold") if a else None
    a_writes = a["writes_per_second"] if a else None
    b_pairs = ok_per_second(b, "confirm") if b else None
    b_hold_p99 = ms(op(b, "hold")["p99_us"]) if op(b, "hold") else None
    c_writes = c["writes_per_second"] if c else None
    d_write_rate = d_writes["writes_per_second"] if d_writes else None

    def ratio(x, y):
        return None if x is None or y in (None, 0) else x / y

    targets = []

    def target(name, measured, goal, passed, margin, detail):
        targets.append(
            {
                "target": name,
                "measured": measured,
                "goal": goal,
                "pass": passed,
                "margin": margin,
                "detail": detail,
            }
        )

    # The request path's targets (issue 21), each against a figure of the same run.
    e_holds = ok_per_second(e, "hold") if e else None
    floor = ok_per_second(f, "health") if f else None
    g_holds = ok_per_second(g, "hold") if g else None
    c_ops = (c["writes_per_second"] + c["reads_per_second"]) if c else None

    def goal_target(name, value, goal, digits, detail, unit="x", below=False):
        passed = value is not None and (value <= goal if below else value >= goal)
        margin = None if value is None else f"{(value / goal - 1) * 100:+.0f}% vs goal"
        target(
            name,
            fmt(value, digits, unit) if value is not None else "n/a",
            f"{'<=' if below else '>='} {goal}{unit}",
            passed,
            margin,
            detail,
        )

    goal_target(
        "unary durable holds/s vs the gRPC floor",
        ratio(e_holds, floor),
        0.6,
        2,
        f"{fmt(e_holds)} holds/s in (e) vs {fmt(floor)} health checks/s in (f)",
    )
    goal_target(
        "100:1 read mix, calls/s vs the gRPC floor",
        ratio(c_ops, floor),
        0.8,
        2,
        f"{fmt(c_ops)} calls/s in (c) vs {fmt(floor)} in (f)",
    )
    goal_target(
        "streamed durable holds/s (client crate) vs Redis SET NX EX (appendfsync always)",
        ratio(g_holds, redis_rps),
        2.0,
        2,
        f"{fmt(g_holds)} holds/s in (g) vs {fmt(redis_rps)} SET/s",
    )
    goal_target(
        "hot-event hold+confirm pairs/s vs PostgreSQL booking transaction tps",
        ratio(b_pairs, pg_book_tps),
        5.0,
        2,
        f"{fmt(b_pairs)} pairs/s vs {fmt(pg_book_tps)} tps",
    )
    goal_target("p99 hold latency at the hot-event hold+confirm load", b_hold_p99, 5.0, 2, "hold p99 of run (b)", " ms", True)
    # The targets before issue 21, for comparison with earlier runs.
    r1 = ratio(e_holds if e else a_holds, redis_rps)
    goal_target(
        "(earlier target) unary durable holds/s vs Redis SET NX EX",
        r1,
        1.0,
        2,
        f"{fmt(e_holds if e else a_holds)} holds/s vs {fmt(redis_rps)} SET/s",
    )

    rows = []

    def row(system, workload, throughput, p50, p99, note=""):
        rows.append([system, workload, throughput, p50, p99, note])

    row(
        "Redis",
        "SET seat:<rand> u NX EX 600, appendfsync always",
        f"{fmt(redis_rps)} SET/s",
        fmt(number(figures, "redis_p50_ms"), 2, " ms"),
        fmt(number(figures, "redis_p99_ms"), 2, " ms"),
        f"{figures.get('redis_requests', '?')} requests, {figures.get('redis_keys_set', '?')} keys set",
    )
    row(
        "PostgreSQL",
        "hold: conditional UPDATE (autocommit)",
        f"{fmt(number(figures, 'pg_hold_tps'))} tps",
        fmt(number(figures, "pg_hold_p50_ms"), 2, " ms"),
        fmt(number(figures, "pg_hold_p99_ms"), 2, " ms"),
        f"avg {fmt(number(figures, 'pg_hold_avg_ms'), 2, ' ms')}; {figures.get('pg_hold_rows_held', '?')} seats held "
        f"of {figures.get('pg_hold_transactions', '?')} transactions",
    )
    row(
        "PostgreSQL",
        "booking txn: SELECT FOR UPDATE, UPDATE, INSERT, one event",
        f"{fmt(pg_book_tps)} tps",
        fmt(number(figures, "pg_book_p50_ms"), 2, " ms"),
        fmt(number(figures, "pg_book_p99_ms"), 2, " ms"),
        f"avg {fmt(number(figures, 'pg_book_avg_ms'), 2, ' ms')}; {figures.get('pg_book_bookings', '?')} bookings "
        f"of {figures.get('pg_book_transactions', '?')} transactions",
    )

    def turnstile_row(summary, name, workload, throughput, latency_op):
        if summary is None:
            row("Turnstile", workload, "not run", "", "", "")
            return
        latency = op(summary, latency_op) or {}
        errors = summary.get("errors_by_code") or {}
        # The bench divides by the time until it noticed its workers finished, which can be up to
        # one reporting tick (1 s) after the deadline; the workers start nothing after it.
        requested = number(figures, f"ts_{name}_requested_seconds")
        nominal = ""
        if requested:
            rate = summary["writes_per_second"] * summary["duration_seconds"] / requested
            nominal = f" ({fmt(rate)} writes/s over the requested {requested:.0f} s)"
        row(
            "Turnstile",
            workload,
            throughput,
            fmt(ms(latency.get("p50_us")), 2, " ms"),
            fmt(ms(latency.get("p99_us")), 2, " ms"),
            f"{latency_op} latency; measured over {summary['duration_seconds']:.1f} s; "
            f"writes {fmt(summary['writes_per_second'])}/s{nominal}, "
            f"reads {fmt(summary['reads_per_second'])}/s; errors {errors or 'none'}",
        )

    turnstile_row(a, "a", "(a) hold + release, 16 events, write-only", f"{fmt(a_holds)} holds/s", "hold")
    if e is not None:
        turnstile_row(e, "e", "(e) hold only, 16 events, each hold left to expire", f"{fmt(e_holds)} holds/s", "hold")
    if g is not None:
        turnstile_row(g, "g", "(g) hold only, on the client crate's booking stream", f"{fmt(g_holds)} holds/s", "hold")
    if f is not None:
        floor = ok_per_second(f, "health")
        turnstile_row(f, "f", "(f) gRPC floor: health checks alone, no engine", f"{fmt(floor)} calls/s", "health")
        needed = 5.0 * pg_book_tps * 2 if pg_book_tps else None
        row(
            "",
            "(f) the floor against the targets",
            "",
            "",
            "",
            f"{fmt(ratio(floor, redis_rps), 2, 'x')} Redis's SET/s (target 1 needs 1.0x of it in holds); "
            f"{fmt(ratio(floor, needed), 2, 'x')} the {fmt(needed)} calls/s that 5x PostgreSQL's booking tps "
            f"needs at two calls per pair (target 2)",
        )
    turnstile_row(b, "b", "(b) hold + confirm, one hot event", f"{fmt(b_pairs)} pairs/s", "hold")
    if b is not None:
        confirm = op(b, "confirm") or {}
        row(
            "",
            "(b) confirm step",
            f"{fmt(ok_per_second(b, 'confirm'))} confirms/s",
            fmt(ms(confirm.get("p50_us")), 2, " ms"),
            fmt(ms(confirm.get("p99_us")), 2, " ms"),
            "confirm latency",
        )
    turnstile_row(c, "c", "(c) 100 reads per write, 16 events", f"{fmt(c_writes)} writes/s", "hold")
    if c is not None:
        view = op(c, "view") or {}
        search = op(c, "search") or {}
        row(
            "",
            "(c) reads: GetEvent / SearchEvents",
            f"{fmt(c['reads_per_second'])} reads/s",
            f"{fmt(ms(view.get('p50_us')), 2, ' ms')} / {fmt(ms(search.get('p50_us')), 2, ' ms')}",
            f"{fmt(ms(view.get('p99_us')), 2, ' ms')} / {fmt(ms(search.get('p99_us')), 2, ' ms')}",
            "view / search latency",
        )
    if d_writes is not None and d_reads is not None:
        turnstile_row(
            d_writes,
            "d",
            "(d) write-only workers beside as many read-only workers",
            f"{fmt(d_write_rate)} writes/s",
            "hold",
        )
        row(
            "",
            "(d) the read-only workers",
            f"{fmt(d_reads['reads_per_second'])} reads/s",
            "",
            "",
            f"{d_reads['reads_per_second'] / max(d_write_rate, 1e-9):.1f} reads per write",
        )

    for phase, label in [("ts_a", "(a)"), ("ts_e", "(e)"), ("ts_b", "(b)"), ("ts_c", "(c)"), ("ts_d", "(d)")]:
        commits = number(figures, f"{phase}_log_commits")
        commands = number(figures, f"{phase}_log_commands")
        if commits:
            row(
                "",
                f"{label} node log",
                f"{fmt(commits)} commits",
                "",
                "",
                f"{fmt(commands)} commands, {commands / commits:.1f} per durable commit, "
                f"{fmt(commits / number(figures, f'cpu_{phase}_wall'))} commits/s",
            )

    cpu_rows = []
    for phase in ["redis", "pg_hold", "pg_book", "ts_a", "ts_e", "ts_f", "ts_b", "ts_c", "ts_d"]:
        wall = number(figures, f"cpu_{phase}_wall")
        if wall is None:
            continue
        server = number(figures, f"cpu_{phase}_server")
        client = number(figures, f"cpu_{phase}_client")
        cpu_rows.append(
            [
                phase,
                fmt(wall, 1, " s"),
                fmt(server, 1, " s"),
                fmt(client, 1, " s"),
                fmt(None if server is None else server / wall, 2),
                fmt(None if client is None else client / wall, 2),
            ]
        )

    d_ratio = ratio(d_write_rate, a_writes)
    lines = []
    lines.append(f"# Peer comparison, {figures.get('date', '?')}")
    lines.append("")
    lines.append(
        f"Concurrency {figures.get('concurrency')}, {figures.get('seconds')} s per run, "
        f"{figures.get('cpus')} CPUs ({figures.get('cpu_model', '?')}), {figures.get('memory', '?')} RAM, "
        f"{figures.get('os', '?')}, data on {figures.get('filesystem', '?')}."
    )
    lines.append(
        f"Redis {figures.get('redis_version', '?')}, PostgreSQL {figures.get('pg_version', '?')}, "
        f"Turnstile {figures.get('turnstile_commit', '?')}{figures.get('turnstile_dirty', '')}."
    )
    lines.append(
        f"Load average before: {figures.get('loadavg_before', '?')}; after: {figures.get('loadavg_after', '?')}. "
        f"Other compiler processes (rustc/cc1/ld) seen at start: {figures.get('busy_before', '?')}, "
        f"at end: {figures.get('busy_after', '?')}."
    )
    if figures.get("fsync_probe"):
        lines.append(f"pg_test_fsync, one 8 kB write + fdatasync at a time: {figures['fsync_probe']} ops/s.")
    lines.append("")
    lines.append("## Figures")
    lines.append("")
    lines.append("| system | workload | throughput | p50 | p99 | notes |")
    lines.append("|---|---|---:|---:|---:|---|")
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    lines.append("")
    lines.append("## Targets")
    lines.append("")
    lines.append("| target | measured | goal | result | margin | from |")
    lines.append("|---|---:|---:|---|---:|---|")
    for t in targets:
        lines.append(
            f"| {t['target']} | {t['measured']} | {t['goal']} | {'PASS' if t['pass'] else 'MISS'} | "
            f"{t['margin'] or ''} | {t['detail']} |"
        )
    if d_ratio is not None:
        lines.append(
            f"| (supplementary) writes/s of write-only workers beside read-only workers vs write-only | "
            f"{d_ratio:.3f}x | >= 0.90x | {'PASS' if d_ratio >= 0.9 else 'MISS'} | "
            f"{(d_ratio / 0.9 - 1) * 100:+.0f}% vs goal | {fmt(d_write_rate)} vs {fmt(a_writes)} writes/s, "
            f"with {fmt(d_reads['reads_per_second'])} reads/s beside |"
        )
    lines.append("")
    if cpu_rows:
        lines.append("## CPU seconds used per run (2 cores = 2.0 CPU-s per wall second)")
        lines.append("")
        lines.append("| run | wall | server CPU | client CPU | server cores | client cores |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for r in cpu_rows:
            lines.append("| " + " | ".join(r) + " |")
        lines.append("")
    text = "\n".join(lines)

    result = {
        "figures": figures,
        "turnstile": {"a": a, "b": b, "c": c, "d_writes": d_writes, "d_reads": d_reads},
        "derived": {
            "redis_set_per_second": redis_rps,
            "pg_booking_tps": pg_book_tps,
            "turnstile_holds_per_second": a_holds,
            "turnstile_write_only_writes_per_second": a_writes,
            "turnstile_hot_pairs_per_second": b_pairs,
            "turnstile_hot_hold_p99_ms": b_hold_p99,
            "turnstile_reads100_writes_per_second": c_writes,
            "turnstile_beside_readers_writes_per_second": d_write_rate,
        },
        "targets": targets,
    }
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    with open(os.path.join(out, "results.md"), "w") as handle:
        handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
