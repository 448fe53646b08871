"""The package's shape: no import cycles, no oversized modules, rooms that keep to themselves.

Imports are read from the source (ast), all of them: module level, inside functions and under
`TYPE_CHECKING`. Importing `a.b.c` also runs the packages `a` and `a.b`, so an import edge
goes to each package on the way that the importer is not itself inside (a module's own
packages are already being initialised when it runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "terminology"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_MODULES_PER_FOLDER = 12
HTTP_ROOMS = ("fhir", "authoring", "server", "web")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Every terminology module `path` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            out.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in out if m == "terminology" or m.startswith("terminology.")}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges: set[str] = set()
        for target in imported_names(path, name):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the packages on the way, then the module
                step = ".".join(parts[:i])
                if step in known and step not in own and step != name:
                    edges.add(step)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(graph):
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, ()))))
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_600_lines(name: str) -> None:
    lines = modules()[name].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """The functions (methods and nested ones included) of `source` longer than `limit` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append(f"{node.name} ({lines} lines, line {node.lineno})")
    return found


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_function_is_over_80_lines(name: str) -> None:
    assert long_functions(modules()[name].read_text()) == [], name


def test_the_function_length_check_sees_a_long_function() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def short():\n    pass\n\ndef long():\n{body}") == [
        f"long ({MAX_FUNCTION_LINES + 1} lines, line 4)"]


def test_no_package_folder_holds_more_than_12_modules() -> None:
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    crowded = {str(f.relative_to(PACKAGE.parent)): n for f in folders
               if (n := len(list(f.glob("*.py")))) > MAX_MODULES_PER_FOLDER}
    assert crowded == {}


def http_room(name: str) -> str | None:
    """The room of the HTTP face a module lives in (None for the shared top of terminology.http)."""
    parts = name.split(".")
    if parts[:2] != ["terminology", "http"] or len(parts) < 4 or parts[2] not in HTTP_ROOMS:
        return None
    return parts[2]


def test_the_http_rooms_keep_to_themselves() -> None:
    # A room imports its own modules and the shared top (exchange, wsgi, metrics, answers,
    # stages), never the app factory or the pipeline, and other rooms only downwards:
    # authoring answers in FHIR (fhir), and so does the server's own 408 for a stalled body
    # (server/slow_clients.py: fhir's content type and common headers); nothing else crosses.
    allowed = {"fhir": set(), "authoring": {"fhir"}, "server": {"fhir"}, "web": set()}
    wiring = {"terminology.http.app", "terminology.http.pipeline"}
    for name, edges in import_graph().items():
        room = http_room(name)
        if room is None:
            continue
        for edge in edges:
            assert edge not in wiring, f"{name} imports {edge}"
            other = http_room(edge)
            assert other in (None, room, *allowed[room]), f"{name} imports {edge}"


def test_the_shared_top_of_the_http_face_imports_no_room_it_should_not() -> None:
    # exchange and wsgi are what every room builds on: they import nothing of the HTTP face
    graph = import_graph()
    for base in ("terminology.http.exchange", "terminology.http.wsgi"):
        assert not any(e.startswith("terminology.http") for e in graph[base]), base


def test_only_the_command_imports_the_http_face() -> None:
    graph = import_graph()
    for name, edges in graph.items():
        if not name.startswith("terminology.http") and name != "terminology.cli":
            assert not any(e.startswith("terminology.http") for e in edges), name


def test_cpt_internals_are_imported_only_by_cpt_content_loading_and_the_cli() -> None:
    allowed = {"terminology.content", "terminology.cli"}
    for name, edges in import_graph().items():
        if name.startswith("terminology.cpt") or name in allowed:
            continue
        inside = sorted(e for e in edges if e.startswith("terminology.cpt."))
        assert not inside, f"{name} imports {inside}"


def test_no_module_named_cpt_stands_outside_the_cpt_package() -> None:
    stray = [n for n in modules() if n.rsplit(".", 1)[-1].startswith("cpt")
             and not n.startswith("terminology.cpt")]
    assert stray == []


def test_a_server_without_writes_loads_neither_the_database_nor_jwt_code() -> None:
    # Worker memory: SQLAlchemy and PyJWT cost about 30 MB, and only a server that writes needs them.
    import subprocess
    import sys

    probe = ("import sys; from terminology.http.app import create_app; create_app(); "
             "print(sorted(m for m in ('sqlalchemy', 'jwt', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip().splitlines()[-1] == "[]"
