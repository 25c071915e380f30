"""Run the whole platform on this machine, in the foreground, with prefixed logs.

Redis: ``REDIS_URL`` when set; otherwise a Redis already answering on localhost:6379
(``BEATKEEPER_LOCAL_REDIS_PORT``);
otherwise a redis-server this runner starts (installed from the OS packages when it is
missing and we are root with apt-get, else a one-line error saying how to install it).
Then the processes of the ``Procfile`` (the same commands docker-compose runs) under
honcho. Ctrl-C stops every process it started.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from honcho.environ import parse as parse_env_file
from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from monitoring.basic_auth import credentials_problem
from schedules.errors import SettingsError
from tasks.infra.errors import (TaskModuleError, check_redis_url, infra_error_line, named_task_modules,
                               redis_unreachable_line)
from tasks.infra.redis_sentinel import SentinelSettings, sentinel_settings
from tasks.infra.redis_tls import client_ssl_kwargs

ROOT = Path(__file__).resolve().parents[2]


def read_dotenv(path: Path = ROOT / ".env", environ=os.environ) -> list[str]:
    """The settings of ``.env`` (the file compose reads too) join the environment; a variable
    already set in the shell wins, an empty value sets nothing. Returns the names it set."""
    if not path.is_file():
        return []
    added = []
    for name, value in parse_env_file(path.read_text()).items():
        if value != "" and name not in environ:
            environ[name] = value
            added.append(name)
    return added


if __name__ == "__main__":  # `make run`: .env joins the environment before any setting below is read
    read_dotenv()
LOCAL_REDIS_PORT = int(os.environ.get("BEATKEEPER_LOCAL_REDIS_PORT") or 6379)
LOCAL_REDIS_URL = f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0"
REDIS_START_TIMEOUT_S = 15.0


class RunnerError(Exception):
    """Something the runner cannot fix by itself; its message is the one line we print."""


def data_dir() -> Path:
    """The data directory (``monitoring.db.data_dir``: one rule), relative to the checkout, created."""
    from monitoring.db import data_dir as configured  # SQLAlchemy: paid only once the runner starts things

    path = ROOT / configured(os.environ)  # an absolute setting stays as it is
    path.mkdir(parents=True, exist_ok=True)
    return path


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, **client_ssl_kwargs(url)).ping())
    except redis.RedisError:
        return False


def ensure_redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary:
        return binary
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("beatkeeper: redis-server is missing; installing it with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False, env=env)
        binary = shutil.which("redis-server")
        if binary:
            return binary
    raise RunnerError("redis-server is not installed: run `sudo apt-get install redis-server` "
                      "(or set REDIS_URL to a Redis you already run)")


def start_local_redis() -> subprocess.Popen:
    """A redis-server on 127.0.0.1:6379 with append-only persistence under the data dir."""
    workdir = data_dir() / "redis"
    workdir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [ensure_redis_server_binary(), "--port", str(LOCAL_REDIS_PORT), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while not answers(LOCAL_REDIS_URL):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RunnerError(f"redis-server did not start; see {workdir / 'redis.log'}")
        time.sleep(0.1)
    print(f"beatkeeper: started redis-server at {LOCAL_REDIS_URL} (data in {workdir})", flush=True)
    return proc


def flower_credentials() -> tuple[str, Path | None]:
    """FLOWER_BASIC_AUTH, or generated credentials kept (0600) in the data dir (and that file).
    Set but unusable (an empty password): refused here, before anything starts."""
    for variable in ("BEATKEEPER_MONITOR_BASIC_AUTH", "FLOWER_BASIC_AUTH"):
        value = os.environ.get(variable, "")
        if value.strip() and credentials_problem(variable, value) is not None:
            raise RunnerError(credentials_problem(variable, value))
    if os.environ.get("FLOWER_BASIC_AUTH", "").strip():
        return os.environ["FLOWER_BASIC_AUTH"], None
    path = data_dir() / "flower_basic_auth"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(f"admin:{secrets.token_urlsafe(16)}\n")
    return path.read_text().strip(), path


def process_env(redis_url: str, flower_auth: str) -> dict[str, str]:
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url
    env["FLOWER_BASIC_AUTH"] = flower_auth
    env.setdefault("BEATKEEPER_MONITOR_BASIC_AUTH", flower_auth)  # the monitor's /metrics and /readyz too
    env.setdefault("FLOWER_PORT", "5555")
    env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
    env.setdefault("BEATKEEPER_MONITOR_HOST", "127.0.0.1")  # containers listen on 0.0.0.0 instead
    env.setdefault("BEATKEEPER_DATA_DIR", str(data_dir()))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def migrate_history_database(env: dict[str, str]) -> None:
    """Create or upgrade the execution-history schema before any process writes to it."""
    from monitoring.db import database_url
    from monitoring.migrations import upgrade_database

    url = database_url(env)
    try:
        revision = upgrade_database(url)
    except Exception as exc:  # a database that does not answer, a URL SQLAlchemy cannot use
        raise RunnerError(infra_error_line(exc, env) or f"DATABASE_URL: {type(exc).__name__}: {exc}") from None
    print(f"beatkeeper: history database at revision {revision}", flush=True)


def check_redis(url: str) -> None:
    """REDIS_URL must be a Redis URL that answers now: otherwise every process would only retry."""
    try:
        check_redis_url(url)
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, **client_ssl_kwargs(url)).ping()
    except SettingsError as exc:
        raise RunnerError(str(exc)) from None
    except (redis.RedisError, ValueError) as exc:
        raise RunnerError(infra_error_line(exc, {"REDIS_URL": url}) or str(exc)) from None


def check_sentinel() -> SentinelSettings | None:
    """With BEATKEEPER_REDIS_SENTINELS set, the sentinels must name a master that answers now."""
    try:
        sentinel = sentinel_settings()
    except SettingsError as exc:
        raise RunnerError(str(exc)) from None
    if sentinel is not None:
        try:
            sentinel.master_client(socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)).ping()
        except redis.RedisError as exc:
            raise RunnerError(redis_unreachable_line(sentinel.redbeat_url(), exc)) from None
    return sentinel


def check_task_modules_exist() -> None:
    """A module of BEATKEEPER_TASK_MODULES that does not exist, refused before Celery is imported
    (seconds on a loaded machine); ``check_task_modules`` imports them all afterwards."""
    for module in named_task_modules(os.environ):
        try:
            missing = importlib.util.find_spec(module) is None
        except ImportError as exc:  # a parent package that does not exist
            raise RunnerError(str(TaskModuleError(module, exc))) from None
        if missing:
            raise RunnerError(str(TaskModuleError(module, ModuleNotFoundError(f"No module named {module!r}"))))


def check_task_modules() -> None:
    """Every module of BEATKEEPER_TASK_MODULES imports (else each process would refuse to start),
    and BEATKEEPER_EXAMPLE names an example."""
    from schedules.examples import selected_example
    from tasks import app
    from tasks.application import task_modules

    app.conf.include = task_modules()  # as the processes will see them: .env was read after `tasks` loaded
    try:
        selected_example(os.environ)
        app.loader.import_default_modules()
    except SettingsError as exc:
        raise RunnerError(str(exc)) from None


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    return dict(parse_procfile(path.read_text()).processes)


def run() -> int:
    redis_proc = None
    redis_url = os.environ.get("REDIS_URL", "")
    flower_auth, generated_in = flower_credentials()  # unusable credentials: refused before anything starts
    check_task_modules_exist()
    sentinel = check_sentinel()  # Sentinel names the master: no local Redis, REDIS_URL unused
    if redis_url and sentinel is None:  # before the task modules: refusing a down Redis needs no Celery import
        check_redis(redis_url)
    if not redis_url and sentinel is None:
        if answers(LOCAL_REDIS_URL):
            print(f"beatkeeper: using the Redis already running at {LOCAL_REDIS_URL}", flush=True)
        else:
            redis_proc = start_local_redis()
        redis_url = LOCAL_REDIS_URL
    try:
        env = process_env(redis_url, flower_auth)
        migrate_history_database(env)
        check_task_modules()  # after the database: its refusal then needs no Celery import either
        if generated_in is not None:
            from monitoring.monitor import DEFAULT_PORT as MONITOR_DEFAULT_PORT  # heavy: only once started

            print(f"beatkeeper: Flower at http://127.0.0.1:{env['FLOWER_PORT']} and the dashboard at "
                  f"http://127.0.0.1:{env.get('BEATKEEPER_MONITOR_PORT') or MONITOR_DEFAULT_PORT}/: "
                  f"user:password = {flower_auth} (from {generated_in})", flush=True)
        manager = Manager(Printer(sys.stdout))
        for name, command in procfile_commands().items():
            manager.add_process(name, command, env=env, cwd=str(ROOT))
        manager.loop()
        return manager.returncode or 0
    finally:
        if redis_proc is not None:
            stop(redis_proc)
            print("beatkeeper: stopped redis-server", flush=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    try:
        sys.exit(run())
    except RunnerError as exc:
        print(f"beatkeeper: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
