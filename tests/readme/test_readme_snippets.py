"""Every schedule snippet in README.md passes `beatkeeper check` (with the README's own task module)."""
from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from tests.readme import snippets

ADD_A_TASK = "Add a task and a schedule entry"


def readme_task_module(tmp_path) -> dict[str, str]:
    """Writes the README's task module where its walk-through says; the environment that imports it."""
    [python] = [b for b in snippets.section(ADD_A_TASK) if b.lang == "python"]
    (tmp_path / "myjobs.py").write_text(python.text)
    return {"BEATKEEPER_TASK_MODULES": "myjobs",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_the_readme_has_schedule_snippets_and_the_walk_through_names_its_files():
    found = snippets.schedule_snippets()
    assert found, "README.md has no schedule snippet"
    assert [b.file_name() for b in snippets.section(ADD_A_TASK) if b.lang in ("yaml", "python")] == [
        "tasks/user/myjobs.py", "schedules/user.yaml"]  # the homes found without a variable


@pytest.mark.parametrize("snippet", snippets.schedule_snippets(),
                         ids=lambda b: f"{b.section[:30]}-{b.lang}")
def test_every_schedule_snippet_passes_check(snippet, tmp_path):
    env = {**os.environ, **readme_task_module(tmp_path)}
    env.pop("BEATKEEPER_SCHEDULE", None)
    path = tmp_path / Path(snippet.file_name() or f"snippet.{snippet.lang}").name
    path.write_text(snippet.text)
    result = subprocess.run([sys.executable, "-m", "tasks.cli", "check", "--config", str(path)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("ok: ")
