"""A griffe extension for the API reference: signatures and types come from
the stubs (``_mappy.pyi``, checked against the module by stubtest), the prose
and examples from the compiled module's own docstrings (the ones ``help()``
shows and ``tests/test_docs.py`` runs), so each is written once.

The compiled docstrings are reStructuredText-ish: a leading ``name(args)``
line for ``help()``, ``>>>`` examples and ``:meth:`` roles. They become
Markdown here: the signature line is dropped (the stub gives it), each
example becomes a fenced ``pycon`` block, and roles become cross-references.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

# The stubs' private aliases, under the names the reference explains them by.
ALIASES = {"_Key": "Key", "_Operator": "Operator"}
SIGNATURE_LINE = re.compile(r"^\w+\(.*\)( or \w+\(.*\))?$")
ROLE = re.compile(r":(meth|func|class|attr):`~?([\w.]+)`")


def markdown(doc: str, owner: str) -> str:
    lines = inspect.cleandoc(doc).splitlines()
    if lines and SIGNATURE_LINE.match(lines[0]):
        lines = lines[1:]
        while lines and not lines[0].strip():
            lines = lines[1:]
    out: list[str] = []
    in_example = False
    for line in lines:
        if line.startswith(">>>") and not in_example:
            out += ["", "```pycon"]
            in_example = True
        elif in_example and not line.strip():
            out += ["```", ""]
            in_example = False
            continue
        out.append(line)
    if in_example:
        out.append("```")

    def role(m: re.Match) -> str:
        name = m.group(2)
        target = name if "." in name else f"{owner}.{name}"
        if m.group(1) == "func" and "." not in name:
            target = f"mappy_python.{name}"
        return f"[`{name.rsplit('.', 1)[-1]}`][{target}]"

    return ROLE.sub(role, "\n".join(out)).strip()


def rename_aliases(obj: Any) -> None:
    """Show ``_Key`` as ``Key`` (and so on) in signatures."""
    exprs = []
    if obj.is_function:
        exprs = [p.annotation for p in obj.parameters] + [obj.returns]
    elif obj.is_attribute:
        exprs = [obj.annotation]
    for expr in exprs:
        if isinstance(expr, griffe.Expr):
            for part in expr.iterate(flat=True):
                if isinstance(part, griffe.ExprName) and part.name in ALIASES:
                    part.name = ALIASES[part.name]


def constructor_as_init(cls: griffe.Class) -> None:
    """The stubs type constructors as ``__new__`` (as the native classes
    define them); the reference shows a class's signature from ``__init__``."""
    new = cls.members["__new__"]
    params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    params += list(new.parameters)[1:]
    for p in params:
        if isinstance(p.annotation, griffe.Expr):
            for part in p.annotation.iterate(flat=True):
                if isinstance(part, griffe.ExprName) and part.name in ALIASES:
                    part.name = ALIASES[part.name]
    init = griffe.Function("__init__", parameters=griffe.Parameters(*params), returns="None", parent=cls)
    cls.set_member("__init__", init)


class RuntimeDocstrings(griffe.Extension):
    """Replace the stubs' short docstrings with the compiled module's."""

    def __init__(self, module: str = "mappy_python._mappy", public: str = "mappy_python") -> None:
        self.module = module
        self.public = public

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != self.public:
            return
        runtime = importlib.import_module(self.module)
        for name in runtime.__all__:
            if name.startswith("_") or name not in pkg.members:
                continue
            self._apply(pkg.members[name], getattr(runtime, name), f"{self.public}.{name}")

    def _apply(self, obj: Any, live: Any, path: str) -> None:
        if obj.is_alias:
            obj = obj.final_target
        rename_aliases(obj)
        if obj.is_class and "__new__" in obj.members and "__init__" not in obj.members:
            constructor_as_init(obj)
        doc = getattr(live, "__doc__", None)
        inherited = type(live).__doc__ if not isinstance(live, type) else None
        if doc and doc != inherited and not doc.startswith("Return "):
            owner = path if obj.is_class else path.rsplit(".", 1)[0]
            obj.docstring = griffe.Docstring(markdown(doc, owner), parent=obj)
        if obj.is_class:
            for name, member in obj.members.items():
                if name.startswith("__"):
                    continue
                attr = inspect.getattr_static(live, name, None)
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if attr is not None:
                    self._apply(member, attr, f"{path}.{name}")
