"""podman as it runs in this sandbox and in CI: runc (crun's defaults fail here), cgroupfs (no
systemd), no default ulimits (the host's are lower than podman's defaults). Every podman call of
the container tests, podman-compose's included, goes through :func:`podman_env`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import missing

CACHE_DIR = Path(os.environ.get("BEATKEEPER_TEST_CONTAINERS_CACHE") or Path.home() / ".cache" / "beatkeeper-containers")
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
TOOLS = ("podman", "runc", "debootstrap")


def require_tools() -> None:
    """Fails in CI, skips locally, naming the first tool missing (.ci/system-deps installs them)."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            missing(f"{tool} (the container tests: `apt-get install podman runc debootstrap`)")
    if os.geteuid() != 0:
        missing("root (the container tests run rootful podman: network namespaces, iptables)")
    if compose_command() is None:
        missing("podman-compose (the container tests: `pip install podman-compose`, a dev dependency)")


def podman_env() -> dict[str, str]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    conf = CACHE_DIR / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, timeout_s: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                            timeout=timeout_s, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}... failed ({result.returncode}): "
                             f"{result.stderr.strip()[-2000:]}")
    return result


def compose_command() -> list[str] | None:
    """podman-compose from this venv (a dev dependency), else from PATH."""
    here = Path(sys.executable).parent / "podman-compose"
    if here.exists():
        return [str(here)]
    found = shutil.which("podman-compose")
    return [found] if found else None
