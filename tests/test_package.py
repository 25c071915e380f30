"""The package as pip installs it: the wheel carries every file of its packages (modules and
the files they read: the Alembic template, the alert rules, the dashboard) and the LICENSE;
every declared dependency is imported somewhere, or README's Packages section says why it is kept."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "schedules", "monitoring")
#: distribution -> the module it is imported as
IMPORT_NAMES = {"celery-redbeat": "redbeat", "prometheus-client": "prometheus_client", "pyyaml": "yaml",
                "psycopg2-binary": "psycopg2"}


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", *PACKAGES, "celeryconfig.py", "pyproject.toml", "README.md",
                             "LICENSE"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name]


def test_the_wheel_carries_every_file_of_the_packages_and_the_license(tmp_path):
    source = tmp_path / "src"
    for name in tracked_files():  # what a clean checkout holds, not this worktree's leftovers
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("beatkeeper-*.whl")
    carried = set(zipfile.ZipFile(wheel).namelist())
    wanted = {n for n in tracked_files() if n.startswith(tuple(f"{p}/" for p in PACKAGES))} | {"celeryconfig.py"}
    assert wanted - carried == set()
    assert {"monitoring/migrations/script.py.mako", "monitoring/prometheus/rules.yml",
            "monitoring/grafana/beatkeeper.json"} <= carried
    assert any(re.fullmatch(r"beatkeeper-[^/]+\.dist-info/(licenses/)?LICENSE", n) for n in carried), sorted(carried)


def readme_packages_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]


def test_every_dependency_is_imported_by_the_code_or_the_readme_says_why_it_is_kept():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0].lower() for d in declared}
    assert not names & {"pydantic", "pytest-celery"}
    code = "\n".join((ROOT / n).read_text() for n in tracked_files() + tracked_test_files() if n.endswith(".py"))
    section = readme_packages_section()
    for name in sorted(names):
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        imported = re.search(rf"^\s*(import|from) {module}\b", code, re.M)
        assert imported or re.search(rf"`{re.escape(name)}`[^\n]*:", section), \
            f"{name} is declared, never imported, and README's Packages section does not say why"
    for name in ("celery", "redis", "celery-redbeat", "flower", "sqlalchemy", "pytz", "pytest-celery"):
        assert f"`{name}`" in section, f"the design card's {name} is not accounted for in README's Packages"


def tracked_test_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "tests", "bench"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    return [name for name in listed.split("\0") if name]


def test_the_license_is_mit_as_pyproject_says():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "beatkeeper contributors" in text
