"""How long do sync, refresh and export take on a feed of about a million stop_times (SQLite),
and how much memory do they need?

    python bench/bench_gtfs.py [--stop-times 1000000] [--horizon-days N] [--tracemalloc]

Generates a synthetic week-long feed (tests/examples/transit/gtfs/feedgen.py), then runs each step once on a
fresh SQLite database and prints a Markdown table: wall time, rows, and the process's peak
RSS so far (ru_maxrss). tracemalloc traces every allocation and slows these steps 3-5x, so
the Python heap peaks come from a second, separate run of the steps (``--tracemalloc``).
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

from bench.load import print_load_at_start_and_end  # noqa: E402

from examples.transit.gtfs import export_app_database, refresh_derived_tables, sync_static_feed  # noqa: E402
from tests.examples.transit.gtfs.feedgen import large_feed  # noqa: E402

MIB = 1024 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_steps(zip_path: Path, work: Path, *, horizon_days: int | None, trace: bool) -> list[dict]:
    """sync, refresh, export and an unchanged re-sync on a fresh database; one dict per step."""
    database = f"sqlite:///{work / 'gtfs.db'}"
    steps = [
        ("sync (download, validate, load, swap)", "stop_times",
         lambda: sync_static_feed(feed_url=zip_path.as_uri(), database=database),
         lambda r: r.row_counts["gtfs_stop_times"]),
        ("refresh (departures, route summaries, checksum)", "departures",
         lambda: refresh_derived_tables(database=database, horizon_days=horizon_days),
         lambda r: r.row_counts["gtfs_departures"]),
        ("export (app SQLite file, sha256)", "departures",
         lambda: export_app_database(database=database, output_path=work / "app.sqlite"),
         lambda r: r.row_counts["departures"]),
        ("sync again (unchanged feed: 304/checksum)", "", lambda: sync_static_feed(
            feed_url=zip_path.as_uri(), database=database), lambda r: 0),
    ]
    if trace:
        tracemalloc.start()
    measured = []
    for name, unit, step, count in steps:
        if trace:
            tracemalloc.reset_peak()
        started = time.perf_counter()
        result = step()
        elapsed_s = time.perf_counter() - started
        measured.append({"step": name, "unit": unit, "seconds": elapsed_s, "rows": count(result), "result": result,
                         "heap_peak_mib": tracemalloc.get_traced_memory()[1] / MIB if trace else None,
                         "rss_peak_mib": peak_rss_mib()})
    if trace:
        tracemalloc.stop()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-times", type=int, default=1_000_000)
    parser.add_argument("--horizon-days", type=int, default=None, help="default: the feed's whole week")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the steps a second time under tracemalloc for the Python heap peaks")
    args = parser.parse_args()
    print_load_at_start_and_end()

    with tempfile.TemporaryDirectory(prefix="bench-gtfs-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        feed = large_feed(stop_times_rows=args.stop_times)
        zip_path = feed.write_zip(work / "feed.zip")
        generate_s = time.perf_counter() - started
        (work / "timed").mkdir()
        timed = run_steps(zip_path, work / "timed", horizon_days=args.horizon_days, trace=False)
        traced = None
        if args.tracemalloc:
            (work / "traced").mkdir()
            traced = run_steps(zip_path, work / "traced", horizon_days=args.horizon_days, trace=True)
        synced, exported = timed[0]["result"], timed[2]["result"]
        print(f"Feed: {synced.row_counts['gtfs_stop_times']:,} stop_times, {synced.row_counts['gtfs_trips']:,} trips, "
              f"{synced.row_counts['gtfs_stops']:,} stops over a week; zip {zip_path.stat().st_size / MIB:.1f} MiB "
              f"(generated in {generate_s:.1f} s). Database {(work / 'timed' / 'gtfs.db').stat().st_size / MIB:.0f} "
              f"MiB, export {exported.size_bytes / MIB:.1f} MiB.\n")
        print("| step | seconds | rows | rows/s | process RSS peak so far (MiB) | Python heap peak (MiB) "
              "| seconds under tracemalloc |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for i, r in enumerate(timed):
            rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] else "-"
            heap = f"{traced[i]['heap_peak_mib']:.1f}" if traced else "(--tracemalloc)"
            slow = f"{traced[i]['seconds']:.1f}" if traced else "-"
            print(f"| {r['step']} | {r['seconds']:.1f} | {r['rows']:,} {r['unit']} | {rate} | "
                  f"{r['rss_peak_mib']:.0f} | {heap} | {slow} |")
        print(f"\nsync + refresh + export: {sum(r['seconds'] for r in timed[:3]):.1f} s")


if __name__ == "__main__":
    main()
