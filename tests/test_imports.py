"""Imports go one way, and the public API is what it says.

The library (``vtex_relay``) never imports the application (``config``, ``worker``, ``tasks``),
and no module imports, at its top level, a module that imports it back: read from the source
(``ast``), so a new cycle fails here before it fails at some import order at run time.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import vtex_relay
from tests.processes import ROOT

APPLICATION = ("config", "worker", "tasks")
PACKAGES = ("vtex_relay", *APPLICATION)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool) -> Iterator[str]:
    """The project modules *path* imports (``from a import b``: ``a.b`` if it is a module, else
    ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        yield from (name for name in names if name in MODULES)


def test_the_library_never_imports_the_application() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.split(".")[0] == "vtex_relay"
        for imported in _imports(path, top_level_only=False)
        if imported.split(".")[0] in APPLICATION
    ]
    assert not wrong, wrong


def test_no_module_imports_itself_back() -> None:
    graph = {name: set(_imports(path, top_level_only=True)) for name, path in MODULES.items()}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        for imported in sorted(graph[name]):
            if imported in trail:
                cycles.append([*trail[trail.index(imported) :], imported])
            elif imported not in done:
                visit(imported, [*trail, imported])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


def test_the_public_api() -> None:
    assert vtex_relay.__all__ == [
        "ConfigurationError",
        "FieldError",
        "InvalidJob",
        "InvoiceConflict",
        "QueueUnavailable",
        "RelayError",
        "enqueue_invoice",
        "enqueue_tracking",
        "enqueue_tracking_number",
    ]
    for name in vtex_relay.__all__:
        member = getattr(vtex_relay, name)
        assert member.__module__.startswith("vtex_relay."), name
    assert {n for n in dir(vtex_relay) if not n.startswith("_")} >= set(vtex_relay.__all__)


# The library's rooms, from the bottom up: a module imports only from its own room or rooms
# below it (the top-level modules ``settings``, ``errors``, ``models``... are the ground floor).
ROOMS = ("", "store", "produce deliver", "ops", "intake sandbox", "cli")


def _rank(name: str) -> int:
    parts = name.split(".")
    room = parts[1] if len(parts) > 2 or (len(parts) == 2 and f"{name}.x" in _PACKAGES) else ""
    return next(i for i, names in enumerate(ROOMS) if room in names.split() or room == names)


_PACKAGES = {f"{name}.x" for name, path in MODULES.items() if path.name == "__init__.py"}


def test_each_room_imports_only_from_rooms_below_it() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith("vtex_relay.") and name != "vtex_relay.__main__"
        for imported in _imports(path, top_level_only=False)
        if imported.startswith("vtex_relay.") and _rank(imported) > _rank(name)
    ]
    assert not wrong, wrong


def test_make_run_s_scripts_need_only_the_package() -> None:
    # `make run` runs scripts/ with the package installed: tests/ is not theirs to import.
    wrong = [
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "scripts").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        if name.split(".")[0] in ("tests", "bench")
    ]
    assert not wrong, wrong
