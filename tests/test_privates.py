"""Each module of lrjax keeps its private names to itself: no module imports another's private
name (``from lrjax._result import _helper``), and no code reaches into another object's private
attribute (``population._save``) except inside the class that defines it (``other._state`` in a
method of the same class). Private *modules* (``lrjax._population``) are the package's layout,
as in Optax and Equinox: their public names are what the modules share."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lrjax"
NAMEDTUPLE = {"_replace", "_asdict", "_fields", "_make"}  # public API of typing.NamedTuple


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(module: str, name: str) -> bool:
    """Whether ``from module import name`` imports a submodule of lrjax."""
    path = PACKAGE.parent.joinpath(*module.split("."), name)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def defined_by(cls: ast.ClassDef) -> set[str]:
    """The names a class defines: its methods, class attributes and ``self.<name> =`` assignments."""
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node in cls.body:
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def violations(source: str, filename: str) -> list[str]:
    tree = ast.parse(source)
    found = []
    owners: dict[ast.AST, set[str]] = {}  # node -> names its enclosing classes define
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef):
            names = defined_by(cls)
            for node in ast.walk(cls):
                owners.setdefault(node, set()).update(names)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if private(alias.name) and not is_module(node.module, alias.name):
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in NAMEDTUPLE:
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in owners.get(node, set()):
                continue
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reaches_into_another_modules_privates():
    found = [
        v
        for path in sorted(PACKAGE.rglob("*.py"))
        for v in violations(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    ]
    assert found == []


def test_the_walk_finds_each_kind_of_reach():
    source = """
from lrjax._result import _readable, SweepResult
from lrjax import _validate

class Population:
    def _load(self):
        pass

    @classmethod
    def restore(cls):
        pop = cls()
        pop._load()          # its own class: allowed
        return pop._streams  # not defined by the class: found

def sweep(pop, state):
    pop._save("path")
    return state._replace(clock=1)
"""
    assert violations(source, "m.py") == [
        "m.py:2: from lrjax._result import _readable",
        "m.py:13: pop._streams",
        "m.py:16: pop._save",
    ]
