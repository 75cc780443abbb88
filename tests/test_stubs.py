"""The hand-written stubs match the runtime module."""

import subprocess
import sys


def test_stubtest_passes():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mappy_python._mappy"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_exports_match_the_stubs():
    import mappy_python

    for name in mappy_python.__all__:
        assert hasattr(mappy_python, name), name
