"""requirements.lock (exact, tested versions) agrees with pyproject.toml and with the
environment the tests run in: a lock that drifted from either fails here, not on a user's
machine."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sllm.lock import pins

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, Version]:
    return {name: Version(version) for name, version in pins(ROOT / "requirements.lock").items()}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    texts = project["dependencies"] + [text for group in extras for text in group]
    return [Requirement(text) for text in texts]


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(
        requirement.marker.evaluate({**default_environment(), "extra": extra})
        for extra in extras | {""}
    )


def test_every_declared_dependency_is_locked_at_a_version_its_range_admits() -> None:
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )


def test_the_lock_is_closed_and_consistent_with_what_each_package_requires() -> None:
    # Walks the dependency tree from pyproject through each package's own metadata.
    pins = _pins()
    pending = [(canonicalize_name(r.name), set(r.extras)) for r in _declared()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if not _applies(requirement, extras):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in pins, f"{name} requires {requirement}, which the lock leaves out"
            assert requirement.specifier.contains(pins[needed], prereleases=True), (
                f"{name} requires {requirement}; the lock pins {needed}=={pins[needed]}"
            )
            pending.append((needed, set(requirement.extras)))


def test_the_tests_run_with_exactly_the_locked_versions() -> None:
    # .ci/run installs with `-c requirements.lock`; a different version here means the
    # lock is not what was tested.
    differing = {
        name: (str(version), metadata.version(name))
        for name, version in _pins().items()
        if Version(metadata.version(name)) != version
    }
    assert differing == {}, f"installed versions differ from requirements.lock: {differing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"\n{ci}\n" in readme, f"README.md does not show .ci/run's command: {ci}"
