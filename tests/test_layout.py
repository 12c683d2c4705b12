"""The tree tells the architecture (docs/architecture.md, "The tree"): what each
package may import, checked on every import statement, function-level ones too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"streams", "sessions", "bidding", "highlight", "cliploop", "liveroom", "tests", "bench"}
KAFKA = {"faust", "aiokafka", "kafka", "mode", "confluent_kafka"}
NO_IO = {"os", "pathlib", "time", "datetime", "io", "subprocess", "shutil", "socket", "sys", "tempfile", "glob",
         "gzip", "zlib", "random", "uuid", "asyncio", "logging", "sqlite3", "mmap", "threading", "importlib", "signal"}
NO_IO_CALLS = {"open", "__import__", "eval", "exec", "input", "print"}  # builtins that reach files, code or a terminal
TOOLING = {"bidding": {"market", "scenarios", "evaluate", "closed_loop"}, "cliploop": {"simulate"}}
ALLOWED = {  # package -> packages of ours it may import
    "streams": {"streams"},
    "sessions": {"streams", "sessions"},
    "bidding": {"streams", "sessions", "bidding"},
    "highlight": {"streams", "sessions", "highlight"},
    "cliploop": {"streams", "sessions", "cliploop"},
    "liveroom": {"streams", "sessions", "bidding", "highlight", "cliploop", "liveroom"},
    "bench": {"streams", "sessions", "bidding", "highlight", "cliploop", "liveroom", "bench"},
}


def imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(list(parts[: len(parts) - node.level]) + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from . import core`, `from bidding import scenarios`: the names may be submodules
            found |= {f"{base}.{a.name}" for a in node.names if a.name != "*"}
        elif isinstance(node, ast.Call) and isinstance(node.args[0] if node.args else None, ast.Constant) and \
                getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__"):
            found.add(str(node.args[0].value))  # importlib.import_module("x"), __import__("x")
    return found


def calls(path: Path) -> set[str]:
    """Names of the builtins a file calls (``open(...)``, ``__import__(...)``)."""
    return {node.func.id for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def modules(package: str):
    yield from sorted((ROOT / package).rglob("*.py"))


def test_each_package_imports_only_what_its_room_may():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in modules(package):
            for name in imports(path):
                top = name.split(".")[0]
                if top in OURS and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
                if top in KAFKA and package != "liveroom" and package != "bench":
                    wrong.append(f"{path.relative_to(ROOT)} imports {name} (a Kafka client or Faust)")
                if package == "streams" and top in NO_IO:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name} (files, the clock or the OS)")
            if package == "streams" and calls(path) & NO_IO_CALLS:
                wrong.append(f"{path.relative_to(ROOT)} calls {sorted(calls(path) & NO_IO_CALLS)}")
                if package in TOOLING and top == "sessions" and path.stem not in TOOLING[package]:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name} (a pure core reads no files)")
    assert not wrong, "\n".join(wrong)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in ALLOWED:
        for path in modules(package):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            graph[name] = {i for i in imports(path) if i.split(".")[0] in OURS}
    return graph


def test_the_pure_cores_reach_no_file_adapter_even_through_another_module():
    graph = _graph()
    names = set(graph)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep in names and dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    for package, tooling in TOOLING.items():
        for name in (n for n in names if n.startswith(package + ".") and n.split(".")[-1] not in tooling):
            bad = sorted(d for d in reach(name) if d.startswith("sessions") or d.split(".")[-1] in tooling)
            assert not bad, f"{name} reaches {bad}"
    for name in (n for n in names if n.startswith("streams")):
        assert all(d.startswith("streams") for d in reach(name)), name


def test_nothing_outside_tests_imports_tests():
    wrong = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", ".venv", ".venv-latest", "build") or rel.parts[0].startswith("."):
            continue
        wrong += [f"{rel} imports {n}" for n in imports(path) if n.split(".")[0] == "tests"]
    assert not wrong, wrong


def test_modules_of_the_project_import_each_other_without_cycles():
    graph = _graph()
    names = set(graph)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            dep = dep if dep in names else next((n for n in names if dep.startswith(n + ".")), dep)
            if dep not in names:
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for n in sorted(names):
        if n not in state:
            visit(n, [n])
    assert not cycles, cycles


def test_the_tree_is_what_the_architecture_page_shows():
    page = (ROOT / "docs" / "architecture.md").read_text()
    for folder in ("streams/", "sessions/", "bidding/", "highlight/", "cliploop/", "liveroom/", "embedded/", "kafka/"):
        assert f"\n{folder}" in page or f"\n  {folder}" in page, folder
    assert (ROOT / "liveroom" / "embedded").is_dir() and (ROOT / "liveroom" / "kafka").is_dir()
    assert not [p.name for p in (ROOT / "streams").glob("*.py") if "kafka" in p.name or p.stem in ("session", "replay")]
