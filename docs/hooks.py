"""MkDocs hooks.

The benchmark chart lives in benchmarks/, where `make bench` writes it; the
site serves it as assets/python.png without a second copy.

The benchmarks page includes the results files of benchmarks/, each under a
heading of its own. A results file links to another as a file beside it
(`[RESULTS.md](RESULTS.md)`); on the site that file is a section of the same
page, so such links become links to its section.
"""

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'^--8<-- "([^":]+)((?::\d+){0,2})"$', re.M)
HEADING = re.compile(r"^## (.+)$", re.M)
LINK = re.compile(r"\]\(([\w./-]+\.md)\)")


def on_files(files, config):
    chart = ROOT / "benchmarks" / "python.png"
    files.append(File.generated(config, "assets/python.png", abs_src_path=str(chart)))
    return files


def slug(title):
    """The anchor MkDocs' toc extension gives a heading."""
    title = re.sub(r"[^\w\s-]", "", title.strip().lower())
    return re.sub(r"[\s]+", "-", title)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "benchmarks.md":
        return markdown
    # Each included file, and the anchor of the heading it sits under.
    sections = {}
    for include in INCLUDE.finditer(markdown):
        above = HEADING.findall(markdown[: include.start()])
        sections[(ROOT / include[1]).resolve()] = slug(above[-1]) if above else ""

    def expand(include):
        path = (ROOT / include[1]).resolve()
        lines = path.read_text().splitlines()
        bounds = [int(b) for b in include[2].split(":")[1:]]
        start = bounds[0] - 1 if bounds else 0
        end = bounds[1] if len(bounds) > 1 else len(lines)
        text = "\n".join(lines[start:end])

        def link(m):
            target = (path.parent / m[1]).resolve()
            if target not in sections:
                raise ValueError(f"{path.name} links to {m[1]}, which the benchmarks page does not include")
            return f"](#{sections[target]})"

        return LINK.sub(link, text)

    return INCLUDE.sub(expand, markdown)
