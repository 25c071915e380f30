"""Stand-in base images, built from Debian bookworm packages (no image registry is reachable here),
tagged with the names the Dockerfile and docker-compose.yml use, so both run unchanged:

- ``python:3.11-slim``: Debian's python3 (3.11) in a venv at /usr/local, as the official image has
  python and pip in /usr/local/bin;
- ``redis:7-alpine``: Debian's redis-server and redis-cli (Redis 7.0), working directory /data;
- ``postgres:16-alpine``: Debian's PostgreSQL **15** (bookworm ships no 16) behind an entrypoint
  honouring the official image's contract: ``POSTGRES_PASSWORD`` (required), ``POSTGRES_USER``
  (default postgres), ``POSTGRES_DB`` (default the user), data in ``/var/lib/postgresql/data``,
  password authentication from other hosts; ``pg_isready`` on PATH.

Each image carries the hash of its recipe (label ``beatkeeper.standin``) and is rebuilt only when
its recipe changes, so a second run on the same machine builds nothing.
"""
from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

from tests.containers.podman import CACHE_DIR, podman, podman_env

LABEL = "beatkeeper.standin"
MIRROR = "http://deb.debian.org/debian"
BASE_TAG = "localhost/beatkeeper-standin-base:bookworm"
BASE_RECIPE = f"debootstrap --variant=minbase bookworm {MIRROR}"
APT = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {}"
       " >/dev/null && rm -rf /var/lib/apt/lists/*")

PYTHON = f"""\
FROM {BASE_TAG}
RUN {APT.format("python3 python3-venv ca-certificates")}
RUN python3 -m venv /usr/local && /usr/local/bin/pip --version
COPY host-ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt
CMD ["python3"]
"""
#: This machine's trusted certificates, so that pip inside the image build reaches PyPI through
#: whatever TLS proxy this machine trusts (as pip on the machine itself does).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

REDIS = f"""\
FROM {BASE_TAG}
RUN {APT.format("redis-server redis-tools")} && mkdir /data
WORKDIR /data
CMD ["redis-server"]
"""

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# The official postgres image's contract, on Debian's PostgreSQL.
set -eu
[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "postgres: POSTGRES_PASSWORD must be set" >&2; exit 1; }
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"; printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"; chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    as_postgres psql -q -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
    as_postgres pg_ctl -D "$PGDATA" -w stop >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*'
"""

POSTGRES = f"""\
FROM {BASE_TAG}
RUN {APT.format("postgresql-15")}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
"""

#: tag -> (Containerfile, extra files of its build context)
STANDINS: dict[str, tuple[str, dict[str, str]]] = {
    "docker.io/library/python:3.11-slim": (PYTHON, {"host-ca-certificates.crt": HOST_CA_BUNDLE.read_text() if HOST_CA_BUNDLE.exists() else ""}),
    "docker.io/library/redis:7-alpine": (REDIS, {}),
    "docker.io/library/postgres:16-alpine": (POSTGRES, {"docker-entrypoint.sh": POSTGRES_ENTRYPOINT}),
}


def recipe_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def built_hash(tag: str) -> str | None:
    found = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', tag, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def ensure_base() -> None:
    wanted = recipe_hash(BASE_RECIPE)
    if built_hash(BASE_TAG) == wanted:
        return
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
                       check=True, capture_output=True, timeout=900)
        tar = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True, timeout=300)
        podman("import", "--change", f"LABEL {LABEL}={wanted}", "--change", 'CMD ["/bin/bash"]',
               str(tar), BASE_TAG, timeout_s=300)


def ensure_standins() -> dict[str, float]:
    """Builds what is missing or stale; returns the seconds spent per image built (empty: all cached)."""
    spent = {}
    start = time.monotonic()
    ensure_base()
    if time.monotonic() - start > 1:
        spent[BASE_TAG] = time.monotonic() - start
    base_hash = recipe_hash(BASE_RECIPE)
    for tag, (containerfile, files) in STANDINS.items():
        wanted = recipe_hash(base_hash, containerfile, *sorted(f"{k}\0{v}" for k, v in files.items()))
        if built_hash(tag) == wanted:
            continue
        start = time.monotonic()
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as context:
            (Path(context) / "Containerfile").write_text(containerfile)
            for name, text in files.items():
                (Path(context) / name).write_text(text)
            podman("build", "--pull=never", "--label", f"{LABEL}={wanted}", "-t", tag, context, timeout_s=900)
        spent[tag] = time.monotonic() - start
    return spent


if __name__ == "__main__":  # build them by hand: python -m tests.containers.standins
    podman_env()
    print(ensure_standins())
