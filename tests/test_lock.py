"""The lock the README's commands and CI install from names every dependency of
pyproject.toml at one exact version that its ranges allow."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.lock: {line!r} is not pinned with =="
            assert _norm(name) not in pins, f"requirements.lock pins {name} twice"
            pins[_norm(name)] = version
    return pins


def test_the_lock_is_closed_every_requirement_of_a_locked_package_is_locked_too():
    """Transitive dependencies: what each installed, locked distribution requires
    (its markers evaluated here, extras it was not asked for left out) is in the lock."""
    from importlib import metadata

    pins = locked()
    assert "pip" in pins  # the installer itself, at one version
    missing = []
    for name in pins:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # locked for another platform or not installed here
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if _norm(req.name) not in pins:
                missing.append(f"{name} needs {req.name}")
    assert not missing, missing


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_every_declared_dependency_is_locked_within_its_range():
    pins = locked()
    missing = [str(r) for r in declared() if _norm(r.name) not in pins]
    assert not missing, f"in pyproject.toml, not in requirements.lock: {missing}"
    outside = [f"{r} (locked {pins[_norm(r.name)]})" for r in declared()
               if not r.specifier.contains(pins[_norm(r.name)], prereleases=True)]
    assert not outside, f"locked outside pyproject.toml's range: {outside}"


def test_the_readme_commands_and_ci_install_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    main = next(line for line in readme.splitlines() if "liveroom replay examples/sample-session --out out" in line)
    assert "-c requirements.lock" in main
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "-c requirements.lock -e '.[test]'" in script
    assert "exec ./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "-c requirements.lock" in (ROOT / "Dockerfile").read_text()
