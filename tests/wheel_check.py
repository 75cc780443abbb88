"""The built distributions, as a user gets them.

Each wheel in DIST for the given interpreters installs into a fresh
virtualenv whose PATH holds no Rust toolchain, imports from that virtualenv,
and runs the README's quick start. The sdist holds every source a build
needs; with --build-sdist it is built into a wheel (this needs Rust) whose
files are the same as the built wheel's.

    python tests/wheel_check.py DIST --python /path/to/python3.9 [--python ...] [--build-sdist]

`make test-wheel` runs it for every supported Python.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# What a user's environment may carry through: proxies, certificates, pip's settings.
PASSED_ON = re.compile(r"(?i)^(.*_proxy|ssl_cert_.*|requests_ca_bundle|pip_.*|home|lang|lc_.*|tmpdir)$")
TOOLCHAIN = ("cargo", "rustc", "rustup", "maturin")


def fail(msg):
    sys.exit(f"wheel_check: {msg}")


def run(cmd, env, cwd, what):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        fail(f"{what} failed ({' '.join(map(str, cmd))}):\n{r.stdout}{r.stderr}")
    return r.stdout


def quick_start():
    """The README's first Python block: the quick start."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if not blocks or "Maplet(" not in blocks[0]:
        fail("README.md's first Python block is not the quick start")
    return blocks[0]


def tag_of(python):
    out = subprocess.run(
        [python, "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def one(paths, what):
    if len(paths) != 1:
        fail(f"expected one {what}, found {len(paths)}: {[p.name for p in paths]}")
    return paths[0]


def bare_env(venv):
    """The user's environment with PATH cut down to the venv and the system's own directories."""
    env = {k: v for k, v in os.environ.items() if PASSED_ON.match(k)}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    for tool in TOOLCHAIN:
        if shutil.which(tool, path=env["PATH"]):
            fail(f"{tool} is on the stripped PATH {env['PATH']}: the check would prove nothing")
    return env


def check_wheel(dist, python, tmp):
    tag = tag_of(python)
    wheel = one(sorted(dist.glob(f"mappy_python-*-{tag}-{tag}-*.whl")), f"{tag} wheel in {dist}")
    names = zipfile.ZipFile(wheel).namelist()
    ext = [n for n in names if n.startswith("mappy_python/_mappy.") and not n.endswith(".pyi")]
    if len(ext) != 1 or not ext[0].startswith(f"mappy_python/_mappy.cpython-{tag[2:]}-"):
        fail(f"{wheel.name} should hold one extension module, for {tag}; it holds {ext}")
    for needed in ("mappy_python/__init__.py", "mappy_python/_mappy.pyi", "mappy_python/py.typed"):
        if needed not in names:
            fail(f"{wheel.name} lacks {needed}")

    venv = tmp / f"venv-{tag}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = bare_env(venv)
    py = str(venv / "bin" / "python")
    # Binary distributions only: were anything to need building, this fails.
    pip = [py, "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    run([*pip, "--only-binary", ":all:", wheel], env, tmp, f"installing {wheel.name}")
    where = run([py, "-c", "import mappy_python; print(mappy_python.__file__)"], env, tmp, "import").strip()
    if not Path(where).resolve().is_relative_to(venv.resolve()):
        fail(f"mappy_python was imported from {where}, not from the fresh virtualenv {venv}")
    out = run([py, "-c", quick_start()], env, tmp, "the README quick start")
    # The quick start prints the count of "user:123": 42, or more with probability under 1%.
    if not re.fullmatch(r"\d+\n", out) or int(out) < 42:
        fail(f"the quick start printed {out!r}, not a count of at least 42")
    help_text = run([str(venv / "bin" / "mappy"), "--help"], env, tmp, "the mappy command")
    if "kmers" not in help_text:
        fail(f"`mappy --help` does not list its commands:\n{help_text}")
    print(f"{wheel.name}: installs without Rust, quick start prints {out.strip()}")
    return wheel, py


def check_sdist(dist):
    sdist = one(sorted(dist.glob("mappy_python-*.tar.gz")), f"sdist in {dist}")
    with tarfile.open(sdist) as t:
        members = t.getnames()
        top = members[0].split("/")[0]
        names = {m[len(top) + 1 :] for m in members if m.startswith(top + "/")}
        pkg_info = t.extractfile(f"{top}/PKG-INFO").read().decode()
    # .cargo/config.toml holds the build flags (x86-64-v2, for POPCNT).
    needed = {"pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "LICENSE", ".cargo/config.toml"}
    for pattern in (
        "crates/*/Cargo.toml",
        "crates/*/build.rs",
        "crates/*/src/**/*.rs",
        "python/mappy_python/*",
    ):
        needed |= {
            str(p.relative_to(ROOT))
            for p in ROOT.glob(pattern)
            if p.is_file() and p.suffix not in (".so", ".pyd", ".pyc")
        }
    missing = sorted(needed - names)
    if missing:
        fail(f"{sdist.name} lacks {missing}")
    requires = re.search(r'(?m)^requires-python = "(.*)"$', (ROOT / "pyproject.toml").read_text())[1]
    if f"Requires-Python: {requires}" not in pkg_info:
        fail(f"{sdist.name}'s PKG-INFO does not say Requires-Python: {requires}")
    print(f"{sdist.name}: holds all {len(needed)} sources a build needs")
    return sdist


def build_sdist(sdist, wheel, python, tmp):
    """Builds the sdist as pip does where no wheel fits: the same files as the built wheel."""
    out = tmp / "from-sdist"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            out,
            sdist,
        ],
        check=True,
        cwd=tmp,
    )
    built = one(sorted(out.glob("mappy_python-*.whl")), "wheel built from the sdist")

    def files(w):
        return sorted(n for n in zipfile.ZipFile(w).namelist() if not n.endswith("/RECORD"))

    if files(built) != files(wheel):
        fail(f"the wheel built from {sdist.name} differs from {wheel.name}: {files(built)} != {files(wheel)}")
    print(f"{sdist.name}: builds into {built.name}, the same files as {wheel.name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dist", type=Path)
    ap.add_argument("--python", action="append", required=True, help="an interpreter whose wheel to check")
    ap.add_argument(
        "--build-sdist", action="store_true", help="also build the sdist, with the first --python"
    )
    args = ap.parse_args()
    dist = args.dist.resolve()
    with tempfile.TemporaryDirectory(prefix="mappy-wheel-") as d:
        tmp = Path(d)
        wheels = [check_wheel(dist, p, tmp) for p in args.python]
        sdist = check_sdist(dist)
        if args.build_sdist:
            build_sdist(sdist, *wheels[0], tmp)


if __name__ == "__main__":
    main()
