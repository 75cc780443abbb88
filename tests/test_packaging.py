"""The supported Pythons are said once and kept in step: requires-python, the
classifiers, the versions `make test-pythons` and `make wheel` cover, and CI,
which runs the oldest and the newest. (tests/wheel_check.py checks the built
distributions themselves.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def version(v):
    return tuple(int(p) for p in v.split("."))


def make_pythons():
    return re.search(r"(?m)^PYTHONS \?= (.*)$", MAKEFILE)[1].split()


def test_make_covers_every_supported_python_and_only_those():
    lowest = re.search(r'(?m)^requires-python = ">=(\d+\.\d+)"$', PYPROJECT)[1]
    classified = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', PYPROJECT)
    pythons = make_pythons()
    assert pythons == sorted(pythons, key=version)
    assert pythons[0] == lowest
    assert classified == pythons
    # Consecutive minor versions: none skipped.
    minors = [version(v)[1] for v in pythons]
    assert minors == list(range(minors[0], minors[-1] + 1))


def test_ci_runs_the_oldest_and_the_newest_from_their_wheels():
    pythons = make_pythons()
    run = re.search(r'(?m)^make test-pythons PYTHONS="(.*)"$', CI)
    assert run, "CI does not run make test-pythons"
    assert {pythons[0], pythons[-1]} <= set(run[1].split())
    # The per-version tests depend on the wheel check, which builds the wheels and the sdist.
    assert re.search(r"(?m)^test-on-%: test-wheel$", MAKEFILE)
    assert re.search(r"(?m)^test-wheel: wheel$", MAKEFILE)
    assert "tests/wheel_check.py dist --build-sdist" in MAKEFILE


def test_one_wheel_per_version_not_abi3():
    # The bindings use CPython's own type slots and calling conventions
    # (docs/RELEASING.md says why): a limited-API build must not creep in.
    cargo = (ROOT / "crates" / "mappy-python" / "Cargo.toml").read_text()
    assert "abi3" not in cargo
    assert "abi3" not in PYPROJECT
