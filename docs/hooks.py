"""MkDocs hooks: the benchmark chart lives in benchmarks/, where `make bench`
writes it; the site serves it as assets/python.png without a second copy."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent


def on_files(files, config):
    chart = ROOT / "benchmarks" / "python.png"
    files.append(File.generated(config, "assets/python.png", abs_src_path=str(chart)))
    return files
