"""The compose stack under podman-compose: a project folder holding the files the Dockerfile and
docker-compose.yml need (copied as they are), a test ``.env``, the user's files where the README puts
them; up, a bounded wait until healthy that names the service at fault, exec, and a teardown
that removes containers, network and volumes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.containers.podman import compose_command, podman, podman_env

ROOT = Path(__file__).resolve().parents[2]

def dockerfile_sources(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    """Every path the Dockerfile COPYs, read from it: the copy below cannot drift from the image."""
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


COMPOSE_FILES = ("Dockerfile", ".dockerignore", "docker-compose.yml")
IMAGE = "localhost/beatkeeper:latest"
BACKING_SERVICES = ("redis", "postgres")  # podman < 4.6 ignores `condition: service_healthy`: up first
ONE_SHOT = "migrate"  # the others start once it has exited 0 (`service_completed_successfully`)


class StackError(AssertionError):
    """The stack did not come up; the message names the service."""


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys([*COMPOSE_FILES, *dockerfile_sources()]):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


def build_image(project: Path) -> float:
    start = time.monotonic()
    podman("build", "--pull=never", "-t", IMAGE, str(project), timeout_s=900)
    return time.monotonic() - start


class Stack:
    def __init__(self, project: Path, name: str, compose_file: str = "docker-compose.yml"):
        self.project, self.name, self.compose_file = project, name, compose_file

    def compose(self, *args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*compose_command(), "-p", self.name, "-f", self.compose_file, *args],
                                cwd=self.project, env=podman_env(), capture_output=True, text=True,
                                timeout=timeout_s)
        if check and result.returncode != 0:
            raise StackError(f"podman-compose {' '.join(args)} failed ({result.returncode}): "
                             f"{(result.stdout + result.stderr).strip()[-3000:]}")
        return result

    def services(self) -> list[str]:
        import yaml

        return list(yaml.safe_load((self.project / self.compose_file).read_text())["services"])

    def container(self, service: str) -> str:
        found = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.name}",
                       "--filter", f"label=io.podman.compose.service={service}", "--format", "{{.Names}}")
        names = found.stdout.split()
        if not names:
            raise StackError(f"service {service!r}: no container")
        return names[0]

    def state(self, service: str) -> dict:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.container(service)).stdout)

    def has_healthcheck(self, service: str) -> bool:
        found = podman("inspect", "--format", "{{json .Config.Healthcheck}}", self.container(service))
        return found.stdout.strip() not in ("", "null", "{}")

    def health(self, service: str) -> tuple[bool, str]:
        """Runs the service's healthcheck now (podman 4.3 runs them from systemd timers; none here)."""
        result = podman("healthcheck", "run", self.container(service), check=False, timeout_s=60)
        return result.returncode == 0, (result.stdout + result.stderr).strip()

    def logs(self, service: str, lines: int = 30) -> str:
        result = podman("logs", "--tail", str(lines), self.container(service), check=False)
        return (result.stdout + result.stderr).strip()

    def up(self, *services: str) -> None:
        """Without podman's --requires links: podman 4.3 cannot start a container whose dependency has
        dependencies ("... not found in input"); the caller starts services in compose's order."""
        self.compose("up", "-d", "--no-build", "--no-deps", *services)

    def wait_healthy(self, services: list[str], timeout_s: float) -> None:
        """Every service running (healthy, where it has a healthcheck) and one-shot ones exited 0;
        else fails naming the first service that is not, with why and its log."""
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        why: dict[str, str] = {}
        while pending:
            for service in list(pending):
                state = self.state(service)
                restarts = podman("inspect", "--format", "{{.RestartCount}}", self.container(service)).stdout.strip()
                if service == "migrate":
                    if state["Status"] == "exited":
                        if state["ExitCode"] != 0:
                            raise StackError(f"service 'migrate' exited {state['ExitCode']}:\n{self.logs(service)}")
                        pending.remove(service)
                    continue
                if restarts not in ("", "0") or state["Status"] == "exited":
                    raise StackError(f"service {service!r} is not running (status {state['Status']}, exit code "
                                     f"{state['ExitCode']}, restarts {restarts}):\n{self.logs(service)}")
                if state["Status"] != "running":
                    why[service] = f"status {state['Status']}"
                    continue
                if self.has_healthcheck(service):
                    healthy, output = self.health(service)
                    if not healthy:
                        why[service] = f"healthcheck: {output[-500:]}"
                        continue
                pending.remove(service)
            if pending and time.monotonic() > deadline:
                service = pending[0]
                raise StackError(f"service {service!r} not healthy after {timeout_s:.0f} s "
                                 f"({why.get(service, 'no answer')}):\n{self.logs(service)}")
            if pending:
                time.sleep(3)

    def exec(self, service: str, *command: str, timeout_s: float = 120) -> str:
        result = podman("exec", self.container(service), *command, check=False, timeout_s=timeout_s)
        if result.returncode != 0:
            raise StackError(f"service {service!r}: {' '.join(command)} exited {result.returncode}: "
                             f"{(result.stdout + result.stderr).strip()[-2000:]}")
        return result.stdout

    def down(self) -> None:
        """Containers, network and volumes, whatever state they are in."""
        self.compose("down", "-v", "-t", "5", timeout_s=300, check=False)
        # Whatever podman-compose left (a failed up): by the project's label, then its volumes and network.
        label = f"label=io.podman.compose.project={self.name}"
        left = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
        if left:
            podman("rm", "-f", "-v", *left, check=False)
        volumes = podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if volumes:
            podman("volume", "rm", "-f", *volumes, check=False)
        networks = [n for n in podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
                    if n.startswith(f"{self.name}_")]
        if networks:
            podman("network", "rm", "-f", *networks, check=False)

    def leftovers(self) -> list[str]:
        label = f"label=io.podman.compose.project={self.name}"
        return (podman("ps", "-aq", "--filter", label, check=False).stdout.split()
                + podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
                + [n for n in podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
                   if n.startswith(f"{self.name}_")])


def write_env(project: Path, values: dict[str, str]) -> None:
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(project / ".env", 0o600)
