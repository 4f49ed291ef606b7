"""Which Ray this package works with, and the one line for a cluster that runs another.

A driver joins a cluster only on the cluster's Ray version and Python version (Ray's own check,
at the patch level by default); Ray says so as a multi-line RuntimeError that a first-line reader
would report as "cannot reach". Here it becomes one line naming both sides and what to do.
"""
from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

_SIDE = re.compile(r"Ray: (\S+)\s+Python: (\S+)")


def supported() -> SpecifierSet | None:
    """The Ray versions this package declares (pyproject's dependency, read from the installed
    metadata), or None where that cannot be read."""
    try:
        requires = metadata.requires("digitsearch") or []
    except metadata.PackageNotFoundError:
        return None
    found = (Requirement(line) for line in requires)
    return next((req.specifier for req in found if req.name == "ray" and not req.marker), None)


def mismatch_line(target: str, message: str) -> str | None:
    """One line for Ray's version-mismatch error joining `target`, or None when `message` is another error."""
    sides = _SIDE.findall(message)
    if "Version mismatch" not in message or len(sides) < 2:
        return None
    (cluster_ray, cluster_py), (here_ray, here_py) = sides[:2]
    said = (f"the Ray cluster at {target!r} runs Ray {cluster_ray} on Python {cluster_py}, this machine Ray "
            f"{here_ray} on Python {here_py}, and a driver must match the cluster")
    versions = supported()
    shown = ",".join(sorted((str(s) for s in versions), key=lambda s: s[0] != ">")) if versions else ""
    if versions is not None and cluster_ray not in versions:
        return (f"{said}; digitsearch works with ray{shown}, not {cluster_ray}: start the cluster on Ray {here_ray} "
                f"with Python {here_py}")
    return f"{said}: run digitsearch in an environment with Ray {cluster_ray} and Python {cluster_py}"
