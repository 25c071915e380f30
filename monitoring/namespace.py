"""Two deployments on one Redis database, kept apart: ``BEATKEEPER_NAMESPACE``.

A deployment name (``staging``, ``prod``) becomes the prefix ``<name>:`` of every key the
deployment writes: beatkeeper's own (each key constant is declared through :func:`namespaced`),
redbeat's (``redbeat_key_prefix``, and so its lock and schedule keys) and kombu's and the result
backend's (their ``global_keyprefix``, set in celeryconfig.py from :func:`key_prefix`). Lua scripts
receive their keys from these constants, never build them. Unset: no prefix, today's key names,
so a deployment that sets nothing keeps its data.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

from schedules.errors import SettingsError

NAMESPACE_VARIABLE = "BEATKEEPER_NAMESPACE"
#: No ``:`` (so one namespace's prefix is never the start of another's) and no glob characters
#: (the monitor and the CLI SCAN by prefix).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: Names whose prefix would land inside an unnamespaced deployment's keys (``redbeat:<entry>``).
_RESERVED = ("beatkeeper", "redbeat")


class NamespaceSettingError(SettingsError):
    """BEATKEEPER_NAMESPACE is not a usable deployment name."""


def deployment_namespace(environ: Mapping[str, str]) -> str:
    """The validated deployment name; ``""`` when unset. The app's loader calls it at start, so
    beat, workers and ``beatkeeper check`` refuse a bad value in one line alike."""
    name = (environ.get(NAMESPACE_VARIABLE) or "").strip()
    if name and not _NAME.fullmatch(name):
        raise NamespaceSettingError(NAMESPACE_VARIABLE, name, "a deployment name is 1 to 40 letters, digits, "
                                    "'-', '_' or '.', starting with a letter or digit (no ':', no spaces)")
    if name.lower() in _RESERVED:
        raise NamespaceSettingError(NAMESPACE_VARIABLE, name, f"{name!r} is reserved (the unnamespaced keys "
                                    "start with it); choose another deployment name")
    return name


def key_prefix(environ: Mapping[str, str] = os.environ) -> str:
    """``"<name>:"``, or ``""`` without a namespace. Never raises: a module constant is built from it
    at import, before the loader refuses a bad name in one line (``deployment_namespace``)."""
    name = (environ.get(NAMESPACE_VARIABLE) or "").strip()
    return f"{name}:" if name else ""


def namespaced(key: str) -> str:
    """``key`` in this process's deployment: the one place the namespace is applied."""
    return key_prefix() + key
