"""Hostile schedule files (``hostile_corpus``): each is refused with one line, quickly and in
little memory, by `beatkeeper check` and by beat's start-up alike.

- in-process, every case: the `check` command (click, the same entry point as the console
  script) and ``load_validated_schedule`` (what beat calls at start, reading
  ``BEATKEEPER_SCHEDULE``) give the same line; each within 2 s and 200 MB (tracemalloc peak);
- as real subprocesses, a few cases: `beatkeeper check` under an address-space rlimit, its
  peak RSS (its own VmHWM) under 200 MB and its wall time within 2 s of a valid file's;
- one real `celery beat` on a billion-laughs file: exit 1, the same line, no traceback.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

import tests.schedules.cli_tasks  # noqa: F401  (registers etl.poll on the app, as the subprocesses do)
from schedules.errors import BeatkeeperScheduleError, ScheduleConfigError
from tests.conftest import ROOT
from tests.servers import stop_process_tree
from tests.schedules.hostile_corpus import BIG_FILE_BYTES, CASES, TASK, Case

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
LIMIT_S = 2.0
LIMIT_BYTES = 200 * 1024 * 1024
ADDRESS_SPACE_BYTES = 1024 ** 3  # a refused file must never need it; a regression dies instead of swapping
BY_ID = {case.id: case for case in CASES}
SUBPROCESS_CASES = ["billion_laughs_in_kwargs", "file_of_50_mb", "deep_nesting_json", "duplicate_entry_yaml",
                    "python_system_exit", "catchup_window_million_days", "cron_superscript_digit"]


def measured(call):
    """``call()``'s result (or exception), its wall time and its peak of Python allocations."""
    tracemalloc.start()
    began = time.perf_counter()
    try:
        outcome = call()
    except Exception as exc:  # the caller asserts which
        outcome = exc
    elapsed_s = time.perf_counter() - began
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed_s, peak_bytes


def check_lines(stderr: str, case: Case) -> list[str]:
    """The refusal lines of `check`, the trailing problem count dropped."""
    lines = stderr.strip().splitlines()
    if case.exit_code == 1:
        assert lines[-1] == f"{len(lines) - 1} problem(s) found"
        return lines[:-1]
    return lines


def beat_lines(error: Exception) -> list[str]:
    """What beat prints for a schedule it refuses at start (``tasks.beat.scheduler``'s start-up)."""
    if isinstance(error, ScheduleConfigError):
        return [str(problem) for problem in error.problems]
    assert isinstance(error, BeatkeeperScheduleError), repr(error)
    return [str(error)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_check_and_beat_start_refuse_with_the_same_one_line(case, tmp_path, monkeypatch, app):
    from tasks import cli
    from tasks.beat.schedule_source import load_validated_schedule

    path = case.write(tmp_path)
    monkeypatch.delenv("BEATKEEPER_DEBUG", raising=False)
    result, check_s, check_bytes = measured(lambda: CliRunner().invoke(cli.main, ["check", "--config", str(path)]))
    assert result.exit_code == case.exit_code, result.stderr
    assert "Traceback" not in result.output + result.stderr
    [line] = check_lines(result.stderr, case)
    assert case.fragment in line
    assert check_s < LIMIT_S and check_bytes < LIMIT_BYTES, (check_s, check_bytes)

    environ = {"BEATKEEPER_SCHEDULE": str(path)}
    error, beat_s, beat_bytes = measured(lambda: load_validated_schedule(app, environ=environ, now=NOW))
    assert beat_lines(error) == [line.removeprefix("beatkeeper: ")]
    assert beat_s < LIMIT_S and beat_bytes < LIMIT_BYTES, (beat_s, beat_bytes)
    print(f"{case.id}: check {check_s:.3f} s {check_bytes / 2**20:.1f} MiB; "
          f"beat start {beat_s:.3f} s {beat_bytes / 2**20:.1f} MiB")


# Runs a module as ``python -m`` would, under an address-space limit, and writes its own peak RSS
# (VmHWM, of this program only: a forked child's rusage also counts the pytest process it came from).
LAUNCHER = """
import atexit, resource, runpy, sys
limit_bytes, report, module = int(sys.argv[1]), sys.argv[2], sys.argv[3]
resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
def write_peak():
    with open('/proc/self/status') as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    with open(report, 'w') as out:
        out.write(peak_kib)
atexit.register(write_peak)
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def measured_command(module: str, *args: str, report: Path) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(ADDRESS_SPACE_BYTES), str(report), module, *args]


def peak_rss_bytes(report: Path) -> int:
    return int(report.read_text()) * 1024


def run_check(path: Path, *, timeout_s: float = 60) -> tuple[int, str, float, int]:
    """`beatkeeper check --config path` as a subprocess: exit code, stderr, wall seconds, peak RSS bytes."""
    env = {**os.environ, "BEATKEEPER_TASK_MODULES": "tests.schedules.cli_tasks"}
    env.pop("BEATKEEPER_DEBUG", None)
    stderr_path, report = path.with_name(path.name + ".stderr"), path.with_name(path.name + ".rss")
    with stderr_path.open("wb") as stderr:
        began = time.monotonic()
        proc = subprocess.Popen(measured_command("tasks.cli", "check", "--config", str(path), report=report),
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        proc.wait(timeout=timeout_s)
        elapsed_s = time.monotonic() - began
    finally:
        stop_process_tree(proc)
    return proc.returncode, stderr_path.read_text(), elapsed_s, peak_rss_bytes(report)


@pytest.fixture(scope="module")
def startup_s(tmp_path_factory) -> float:
    """The wall time of `check` on a valid one-entry file: interpreter and imports, on this machine now."""
    path = tmp_path_factory.mktemp("valid") / "ok.yaml"
    path.write_text(f"job: {{task: {TASK}, every: 60}}\n")
    code, stderr, elapsed_s, _ = run_check(path)
    assert code == 0, stderr
    return elapsed_s


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_check_subprocess_refuses_within_bounds(case_id, tmp_path, startup_s):
    case = BY_ID[case_id]
    path = case.write(tmp_path)
    code, stderr, elapsed_s, rss_bytes = run_check(path)
    assert code == case.exit_code, stderr
    [line] = check_lines(stderr, case)
    assert case.fragment in line and "Traceback" not in stderr
    assert rss_bytes < LIMIT_BYTES, rss_bytes
    assert elapsed_s - startup_s < LIMIT_S, (elapsed_s, startup_s)
    print(f"{case_id}: wall {elapsed_s:.2f} s (a valid file: {startup_s:.2f} s), peak RSS {rss_bytes / 2**20:.0f} MiB")


def test_the_big_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from schedules import loader

    path = BY_ID["file_of_50_mb"].write(tmp_path)
    assert path.stat().st_size == BIG_FILE_BYTES
    monkeypatch.setattr(loader, "_read_text", lambda p: pytest.fail("read a file over the limit"))
    with pytest.raises(BeatkeeperScheduleError, match="the limit is 4 MiB"):
        loader.load_schedule_file(path)


def test_beat_process_refuses_a_billion_laughs_with_the_check_line(processes, tmp_path):
    from schedules.loader import load_schedule_file

    case = BY_ID["billion_laughs_in_kwargs"]
    path = case.write(tmp_path)
    with pytest.raises(BeatkeeperScheduleError) as caught:
        load_schedule_file(path)
    assert case.fragment in str(caught.value)
    report = tmp_path / "beat.rss"
    began = time.monotonic()
    beat = processes.start(measured_command("celery", "-A", "tasks", "beat", "--loglevel=INFO", report=report),
                           name="beat", env={"BEATKEEPER_SCHEDULE": str(path),
                                             "BEATKEEPER_TASK_MODULES": "tests.schedules.cli_tasks"})
    beat.wait(timeout=90)
    log = Path(beat.log_path).read_text()
    assert beat.returncode == 1, log[-2000:]
    assert "Traceback" not in log
    assert str(caught.value) in log  # the line `check` prints after "beatkeeper: "
    assert "refusing to start with an invalid schedule" in log
    assert peak_rss_bytes(report) < LIMIT_BYTES
    print(f"beat refused in {time.monotonic() - began:.1f} s (start-up included), "
          f"peak RSS {peak_rss_bytes(report) / 2**20:.0f} MiB")
