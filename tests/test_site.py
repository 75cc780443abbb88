"""The documentation site as built: examples render as code, and the API
reference documents every public name.

As a test it builds the site as `make docs` does (`mkdocs build --strict`,
into a temporary directory; the test extra installs MkDocs). As a script
it checks a site already built: `python tests/test_site.py site`.
"""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKQUOTE = re.compile(r"<blockquote\b.*?</blockquote>", re.S)
# A docstring's `>>>` lines that Markdown took for quote markers: three
# blockquotes, one inside the other, and no `>>>` left in the text.
NESTED = re.compile(r"<blockquote>\s*<blockquote>\s*<blockquote>\s*(.*?)</", re.S)


def public_names():
    """Every public name of the package, as the API reference anchors it
    (``mappy_python.Maplet``, ``mappy_python.dask.query``, ...)."""
    names = set()
    for module in ("mappy_python", "mappy_python.sharded", "mappy_python.dask"):
        mod = importlib.import_module(module)
        # The sharded module's names are the package's own (re-exported).
        prefix = "mappy_python.dask" if module == "mappy_python.dask" else "mappy_python"
        names |= {f"{prefix}.{name}" for name in mod.__all__}
    return names


def quoted_code(site):
    """Examples rendered as quotes instead of code: a blockquote holding a
    `>>>` line, or `>>>` itself turned into three nested blockquotes."""
    found = []
    for page in sorted(Path(site).rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        quotes = [q for q in BLOCKQUOTE.findall(html) if "&gt;&gt;&gt;" in q]
        quotes += NESTED.findall(html)
        for quote in quotes:
            text = re.sub(r"<[^>]+>", "", quote).strip().splitlines()
            found.append(f"{page.relative_to(site)}: {text[0] if text else ''}")
    return found


def undocumented(site):
    """Public names the API reference does not document: each object has an
    anchor named by its path; `__version__` is mentioned in the text."""
    html = (Path(site) / "api" / "index.html").read_text(encoding="utf-8")
    missing = []
    for name in sorted(public_names()):
        short = name.rsplit(".", 1)[1]
        if short.startswith("__"):
            if f"<code>mappy.{short}</code>" not in html and f"<code>{name}</code>" not in html:
                missing.append(name)
        elif f'id="{name}"' not in html:
            missing.append(name)
    return missing


def check(site):
    problems = [f"example rendered as a quote: {q}" for q in quoted_code(site)]
    problems += [f"not in the API reference: {n}" for n in undocumented(site)]
    return problems


def build(site):
    """`make docs`'s build, into `site`, with this Python's MkDocs."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}"


def test_built_site_renders_examples_as_code_and_documents_every_public_name(tmp_path):
    site = tmp_path / "site"
    build(site)
    assert (site / "api" / "index.html").is_file()
    problems = check(site)
    assert not problems, "\n".join(problems)


def test_public_names_are_found():
    names = public_names()
    assert {"mappy_python.Maplet", "mappy_python.ShardedStats", "mappy_python.dask.query"} <= names


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} SITE_DIR")
    found = check(sys.argv[1])
    for problem in found:
        print(problem, file=sys.stderr)
    sys.exit(1 if found else 0)
