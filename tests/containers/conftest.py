"""The images of the container tests, built once per run: stand-ins (cached across runs) and the
project's image from the Dockerfile, in a copy of the project holding the user's files where the
README puts them (tasks/user/, schedules/user.yaml)."""
from __future__ import annotations

import pytest

from tests.containers.podman import require_tools
from tests.containers.stack import build_image, copy_project
from tests.containers.standins import ensure_standins

USER_MODULE = '''\
from tasks import app


@app.task(name="stackjobs.tick")
def tick(label: str) -> str:
    return label
'''
USER_SCHEDULE = '''\
stack-tick:
  task: stackjobs.tick
  every: 10
  kwargs: {label: stack}
  catchup: all
  catchup_max: 30
'''


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    require_tools()
    built = ensure_standins()
    project = copy_project(tmp_path_factory.mktemp("project"))
    (project / "tasks" / "user" / "stackjobs.py").write_text(USER_MODULE)  # where the README puts them
    (project / "schedules" / "user.yaml").write_text(USER_SCHEDULE)
    build_s = build_image(project)
    print(f"stand-ins built: {built or 'none (cached)'}; project image: {build_s:.0f} s")
    return project
