"""BEATKEEPER_NAMESPACE (monitoring/namespace.py): unset, every key keeps today's name; set, every key
of the deployment (beatkeeper's constants, redbeat's prefix and lock, kombu's and the result backend's
``global_keyprefix``) starts with ``<name>:``; a bad name is one line. Keys are read from fresh
processes, since a module builds its constants at import."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.namespace import NAMESPACE_VARIABLE, deployment_namespace, key_prefix
from schedules.errors import SettingsError
from tests.test_design_doc import NAMESPACING, SCANNED, _is_key

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120

#: Prints every ``beatkeeper:`` string constant and dataclass default of the modules named in argv,
#: then redbeat's and kombu's prefixes as the app configures them.
DUMP = """
import dataclasses, importlib, json, sys
keys = {}
for module_name in sys.argv[1:]:
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if isinstance(value, str) and name.isupper() and "beatkeeper:" in value:
            keys[f"{module_name}.{name}"] = value
        elif isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module_name:
            for field in dataclasses.fields(value):
                if isinstance(field.default, str) and "beatkeeper:" in field.default:
                    keys[f"{module_name}.{name}.{field.name}"] = field.default
from redbeat.schedulers import RedBeatConfig
from tasks.application import app
config = RedBeatConfig(app)
keys["redbeat schedule"], keys["redbeat lock"] = config.schedule_key, config.lock_key
keys["kombu"] = app.conf.broker_transport_options["global_keyprefix"]
keys["results"] = app.conf.result_backend_transport_options["global_keyprefix"]
keys["result key"] = app.backend.get_key_for_task("id").decode()
print(json.dumps(keys))
"""


def _namespaced_modules() -> list[str]:
    """Every module that names a ``beatkeeper:`` key."""
    found = []
    for package in ("tasks", "monitoring"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if '"beatkeeper:' in path.read_text() and path.name != "namespace.py":
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def _keys(namespace: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != NAMESPACE_VARIABLE}
    if namespace is not None:
        env[NAMESPACE_VARIABLE] = namespace
    done = subprocess.run([sys.executable, "-c", DUMP, *_namespaced_modules()], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_without_a_namespace_every_key_keeps_todays_name():
    keys = _keys(None)
    assert keys["monitoring.heartbeats.HEARTBEATS_KEY"] == "beatkeeper:heartbeats"
    assert keys["monitoring.alerts.ALERTS_KEY"] == "beatkeeper:monitor:alerts"
    assert keys["tasks.policy.LOCK_PREFIX"] == "beatkeeper:lock:"
    assert keys["tasks.run_ids.RUN_KEY_PREFIX"] == "beatkeeper:run:"
    assert keys["monitoring.history.SPOOL_KEY"] == "beatkeeper:history:spool"
    assert keys["monitoring.rules.base.PlatformKeys.lock_prefix"] == "beatkeeper:lock:"
    assert keys["redbeat schedule"] == "redbeat::schedule" and keys["redbeat lock"] == "redbeat::lock"
    assert keys["kombu"] == keys["results"] == ""
    assert keys["result key"] == "celery-task-meta-id"
    assert all(value.startswith("beatkeeper:") for name, value in keys.items() if "." in name)


def test_a_namespace_prefixes_every_key_of_the_deployment():
    plain, staging = _keys(None), _keys("staging")
    assert staging.keys() == plain.keys() and len(plain) >= 35
    assert {name: value for name, value in staging.items() if value != "staging:" + plain[name]} == {}
    assert staging["redbeat lock"] == "staging:redbeat::lock"
    assert staging["result key"] == "staging:celery-task-meta-id"


def test_every_beatkeeper_key_literal_is_declared_through_namespaced():
    """A key written as a bare literal would be shared by every deployment: none may be."""
    offenders = []
    for name in SCANNED:
        target = ROOT / name
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_key(node.value):
                    parent = parents.get(node)
                    if not (isinstance(parent, ast.Call) and getattr(parent.func, "id", None) == NAMESPACING):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_the_default_is_no_namespace():
    assert deployment_namespace({}) == "" and key_prefix({}) == ""
    assert deployment_namespace({NAMESPACE_VARIABLE: " prod-eu.2 "}) == "prod-eu.2"
    assert key_prefix({NAMESPACE_VARIABLE: "staging"}) == "staging:"


@pytest.mark.parametrize("name", ["a:b", "two words", "prod*", "-lead", "x" * 41, "BeatKeeper", "redbeat"])
def test_a_bad_name_is_refused_in_one_line(name):
    with pytest.raises(SettingsError, match=rf"^{NAMESPACE_VARIABLE}=") as refused:
        deployment_namespace({NAMESPACE_VARIABLE: name})
    assert "\n" not in str(refused.value)


def test_beatkeeper_check_refuses_a_bad_namespace_in_one_line():
    env = {**os.environ, NAMESPACE_VARIABLE: "prod:eu"}
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "check"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=TIMEOUT_S)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"beatkeeper: {NAMESPACE_VARIABLE}='prod:eu': a deployment name is 1 to 40 "
                                        "letters, digits, '-', '_' or '.', starting with a letter or digit "
                                        "(no ':', no spaces)"]
