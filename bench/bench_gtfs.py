"""How long do sync, refresh and export take on a feed of about a million stop_times (SQLite),
and how much memory do they need?

    python bench/bench_gtfs.py [--stop-times 1000000] [--horizon-days N] [--no-tracemalloc]

Generates a synthetic week-long feed (tests/gtfs/feedgen.py), then runs each step once on a
fresh SQLite database and prints a Markdown table: wall time, rows, Python heap peak
(tracemalloc, per step) and the process's peak RSS so far (ru_maxrss). tracemalloc slows
allocation-heavy Python code; ``--no-tracemalloc`` gives the undisturbed timings.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.gtfs import export_app_database, refresh_derived_tables, sync_static_feed  # noqa: E402
from tests.gtfs.feedgen import large_feed  # noqa: E402

MIB = 1024 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(name: str, step, *, trace: bool) -> tuple[dict, object]:
    if trace:
        tracemalloc.reset_peak()
    started = time.perf_counter()
    result = step()
    elapsed_s = time.perf_counter() - started
    heap_peak = tracemalloc.get_traced_memory()[1] / MIB if trace else float("nan")
    return {"step": name, "seconds": elapsed_s, "heap_peak_mib": heap_peak, "rss_peak_mib": peak_rss_mib()}, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-times", type=int, default=1_000_000)
    parser.add_argument("--horizon-days", type=int, default=None, help="default: the feed's whole week")
    parser.add_argument("--no-tracemalloc", action="store_true")
    args = parser.parse_args()
    trace = not args.no_tracemalloc

    with tempfile.TemporaryDirectory(prefix="bench-gtfs-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        feed = large_feed(stop_times_rows=args.stop_times)
        zip_path = feed.write_zip(work / "feed.zip")
        generate_s = time.perf_counter() - started
        database = f"sqlite:///{work / 'gtfs.db'}"
        if trace:
            tracemalloc.start()
        rows = []
        row, synced = measure("sync (download, validate, load, swap)", lambda: sync_static_feed(
            feed_url=zip_path.as_uri(), database=database), trace=trace)
        rows.append({**row, "rows": synced.row_counts["gtfs_stop_times"], "unit": "stop_times"})
        row, refreshed = measure("refresh (departures, route summaries, checksum)", lambda: refresh_derived_tables(
            database=database, horizon_days=args.horizon_days), trace=trace)
        rows.append({**row, "rows": refreshed.row_counts["gtfs_departures"], "unit": "departures"})
        row, exported = measure("export (app SQLite file, sha256)", lambda: export_app_database(
            database=database, output_path=work / "app.sqlite"), trace=trace)
        rows.append({**row, "rows": exported.row_counts["departures"], "unit": "departures"})
        row, again = measure("sync again (unchanged feed)", lambda: sync_static_feed(
            feed_url=zip_path.as_uri(), database=database), trace=trace)
        rows.append({**row, "rows": 0, "unit": again.status})

        print(f"Feed: {args.stop_times:,} stop_times requested, {synced.row_counts['gtfs_trips']:,} trips, "
              f"{synced.row_counts['gtfs_stops']:,} stops; zip {zip_path.stat().st_size / MIB:.1f} MiB, "
              f"generated in {generate_s:.1f} s. Database {(work / 'gtfs.db').stat().st_size / MIB:.0f} MiB, "
              f"export {exported.size_bytes / MIB:.1f} MiB. tracemalloc {'on' if trace else 'off'}.\n")
        print("| step | seconds | rows | rows/s | Python heap peak (MiB) | process RSS peak (MiB) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] else "-"
            print(f"| {r['step']} | {r['seconds']:.1f} | {r['rows']:,} {r['unit']} | {rate} | "
                  f"{r['heap_peak_mib']:.1f} | {r['rss_peak_mib']:.0f} |")
        total = sum(r["seconds"] for r in rows[:3])
        print(f"\nsync + refresh + export: {total:.1f} s")


if __name__ == "__main__":
    main()
