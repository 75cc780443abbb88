"""The supported Pythons are said once and kept in step: requires-python, the
classifiers, the versions `make test-pythons` and `make wheel` cover, and CI,
which runs the oldest and the newest; the version is above every one
published under the package's names, the extras install what their modules
import, and the docs install from a clone, not from PyPI.
(tests/wheel_check.py checks the built distributions themselves.)"""

import ast
import re
import sys
from pathlib import Path

import pytest
import trove_classifiers
from packaging.licenses import canonicalize_license_expression  # packaging 24.2 or later

try:
    import tomllib
except ImportError:  # Python < 3.11: the test extra installs tomli
    import tomli as tomllib

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


# ---- name, version and extras ------------------------------------------------

CARGO = tomllib.loads((ROOT / "Cargo.toml").read_text())
PROJECT = tomllib.loads(PYPROJECT)["project"]
# Published before this package, under its names or close to them: PyPI's
# unrelated mappy-python and crates.io's mappy-core.
PUBLISHED = "0.3.2"


def workspace_version():
    return CARGO["workspace"]["package"]["version"]


def test_version_is_above_every_published_one_and_said_once():
    v = workspace_version()
    assert version(v) > version(PUBLISHED), v
    # pyproject.toml takes it from Cargo (maturin), and both crates from the workspace.
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    for crate in ("mappy-core", "mappy-python"):
        manifest = tomllib.loads((ROOT / "crates" / crate / "Cargo.toml").read_text())
        assert manifest["package"]["version"] == {"workspace": True}, crate
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"] if p["name"].startswith("mappy-")}
    assert locked == {"mappy-core": v, "mappy-python": v}


def test_the_extension_in_use_reports_the_version():
    import mappy_python

    if mappy_python.__version__ != workspace_version():
        pytest.skip(f"the extension in use was built from version {mappy_python.__version__}: rebuild it")
    assert mappy_python.__version__ == workspace_version()


def requirement_names(requirements):
    """{name: set of extras} of requirement strings, names normalized."""
    out = {}
    for r in requirements:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", r)
        name = re.sub(r"[-_.]+", "-", m[1]).lower()
        out[name] = {e.strip() for e in (m[2] or "").split(",") if e.strip()}
    return out


def imported_modules(path):
    """The absolute imports of a module of the package, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_dask_extra_installs_everything_mappy_dask_imports():
    extra = requirement_names(PROJECT["optional-dependencies"]["dask"])
    installed = {**requirement_names(PROJECT["dependencies"]), **extra}
    assert {"dataframe", "distributed"} <= extra["dask"]
    assert "pandas" in extra  # imported by mappy.dask itself, not only through dask.dataframe
    package = ROOT / "python" / "mappy_python"
    modules = set()
    for name in ("dask.py", "sharded.py", "_layout.py"):
        modules |= imported_modules(package / name)
    stdlib = getattr(sys, "stdlib_module_names", None) or {
        "os", "functools", "itertools", "typing", "__future__", "collections", "math", "warnings",
    }  # fmt: skip
    for module in sorted(modules):
        top = module.split(".")[0]
        if top in stdlib or top == "mappy_python":
            continue
        assert top in installed, f"{module} is imported but not installed by the dask extra"
        if top == "dask" and module != "dask":
            sub = module.split(".")[1]
            if sub in ("dataframe", "distributed"):
                assert sub in extra["dask"], module


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.py"))]


def test_no_doc_installs_the_package_from_pypi():
    """It is not there (the mappy-python on PyPI is an unrelated project):
    every install goes through a clone or a built wheel."""
    from_pypi = re.compile(r"""pip install\s+(?:-\S+\s+)*["']?mappy[-_]python\b""", re.I)
    for path in DOCS:
        text = " ".join(path.read_text().split())  # a command split across lines too
        assert not from_pypi.search(text), f"{path.name}: {from_pypi.search(text)[0]}"


def test_readme_says_how_to_install_today_and_which_mappy_this_is():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Install") :]
    section = section[: section.index("\n## ", 1)]
    assert "pip install ." in section and "make wheel" in section
    assert "minimap2" in section and "import mappy_python as mappy" in section


def test_make_demo_says_what_it_does_while_it_builds():
    """The first ``make demo`` compiles Rust for minutes: it says so before,
    and pip shows its progress (no --quiet)."""
    recipe = re.search(r"(?m)^demo:.*\n((?:\t.*\n)+)", MAKEFILE)[1].splitlines()
    install = next(i for i, line in enumerate(recipe) if "pip install" in line)
    assert not re.search(r"\s(--quiet|-q+)\b", recipe[install]), recipe[install]
    said = recipe[install - 1]
    assert said.startswith("\t@echo ") and "minutes" in said, said
    # Every step after it is announced too.
    steps = [i for i, line in enumerate(recipe) if i > install and not line.startswith("\t@echo ")]
    assert steps
    for i in steps:
        assert recipe[i - 1].startswith("\t@echo "), recipe[i]


# ---- what PyPI and pip show about the package --------------------------------

REPOSITORY = "https://github.com/entropy-tamer/mappy"


def test_metadata_says_who_where_and_what():
    assert PROJECT["authors"] and all(a.get("name") for a in PROJECT["authors"])
    urls = PROJECT["urls"]
    assert urls["Repository"] == REPOSITORY
    assert urls["Issues"] == f"{REPOSITORY}/issues"
    assert urls["Documentation"].startswith(REPOSITORY)
    assert (ROOT / urls["Documentation"].split("/blob/main/")[1]).is_file()
    assert {"maplet", "k-mer counting", "bioinformatics"} <= set(PROJECT["keywords"])
    classifiers = PROJECT["classifiers"]
    assert len(set(classifiers)) == len(classifiers)
    for prefix in ("Development Status :: ", "Intended Audience :: "):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    assert "Topic :: Scientific/Engineering :: Bio-Informatics" in classifiers
    assert "Programming Language :: Rust" in classifiers
    unknown = [
        c
        for c in classifiers
        if c not in trove_classifiers.classifiers or c in trove_classifiers.deprecated_classifiers
    ]
    assert not unknown, unknown


def test_the_licence_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "MIT" == CARGO["workspace"]["package"]["license"]
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    # PEP 639: no License :: classifier beside an expression.
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License :: ")]
    # maturin writes License-Expression (metadata 2.4) from 1.9.3 on.
    backend = tomllib.loads(PYPROJECT)["build-system"]["requires"]
    low = re.fullmatch(r"maturin>=([\d.]+),<2", backend[0])
    assert low and version(low[1]) >= (1, 9, 3), backend
    assert canonicalize_license_expression(PROJECT["license"]) == PROJECT["license"]


def test_installed_metadata_when_it_is_of_this_version():
    """The metadata pip installed, when the installed distribution is of
    this version (a build of another version says nothing about this one)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("mappy-python")
    except metadata.PackageNotFoundError:
        pytest.skip("mappy-python is not installed (only on the path)")
    if dist.version != workspace_version():
        pytest.skip(f"the installed mappy-python is {dist.version}, not {workspace_version()}: reinstall it")
    meta = dist.metadata
    assert meta["License-Expression"] == "MIT"
    assert set(meta.get_all("Classifier")) == set(PROJECT["classifiers"])
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Repository"] == REPOSITORY
    extras = [r for r in dist.requires if 'extra == "dask"' in r or "extra == 'dask'" in r]
    assert any(r.startswith("pandas") for r in extras), extras
