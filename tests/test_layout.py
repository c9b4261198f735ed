"""The tree is the pipeline (issue #16): no import circle anywhere in ``sweaug``, and no stage
imports a later one. Read from the source (every ``import``, also those inside functions)."""
from __future__ import annotations

import ast

from conftest import ROOT

PKG = ROOT / "sweaug"
# a module may import its own stage and earlier ones only
STAGES = ["files", "records", "bundled", "sources", "build", "augment", "windows", "label",
          "train",
          "ablate",
          "publish", "view", "app", "demo", "cli"]
RANK = {"files": 0, "records": 0, "bundled": 0, "sources": 1, "build": 2, "augment": 3,
        "windows": 4, "label": 5, "train": 5, "ablate": 6, "publish": 7, "view": 7, "app": 7, "demo": 8,
        "cli": 9}


def _module(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module(f): f for f in PKG.rglob("*.py")}
    graph = {}
    for name, f in modules.items():
        base = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for n in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(n, ast.ImportFrom):
                target = (".".join(base[:len(base) - n.level + 1] + ([n.module] if n.module else []))
                          if n.level else (n.module or ""))
                subs = [f"{target}.{a.name}" for a in n.names if f"{target}.{a.name}" in modules]
                deps |= set(subs) or {target}
            elif isinstance(n, ast.Import):
                deps |= {a.name for a in n.names}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # the package itself: sweaug/__init__.py


def test_no_import_circle():
    graph = import_graph()
    seen, on_path, circles = set(), [], []

    def visit(m):
        if m in on_path:
            circles.append(on_path[on_path.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_path.append(m)
        for d in sorted(graph[m]):
            visit(d)
        on_path.pop()

    for m in sorted(graph):
        visit(m)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_every_stage_is_ranked_and_no_stage_imports_a_later_one():
    graph = import_graph()
    stages = {_stage(m) for m in graph} - {None}
    assert stages <= set(RANK), f"modules outside any stage: {sorted(stages - set(RANK))}"
    wrong = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
             if _stage(m) and _stage(d) and RANK[_stage(d)] > RANK[_stage(m)]]
    assert not wrong, "a stage imports a later one: " + ", ".join(sorted(wrong))


def test_the_checker_sees_a_circle_and_a_backward_import(tmp_path, monkeypatch):
    """The two checks above can fail: on a tree with executors <-> jobs, and sources importing
    build, each names what is wrong."""
    import pytest

    pkg = tmp_path / "sweaug"
    (pkg / "build").mkdir(parents=True)
    (pkg / "sources").mkdir()
    for f, text in {"__init__.py": "", "build/__init__.py": "", "sources/__init__.py": "",
                    "build/jobs.py": "from .executors import LocalExecutor\n",
                    "build/executors.py": "def f():\n    from .jobs import STATE\n",
                    "sources/cv.py": "from ..build.shards import x\n",
                    "build/shards.py": ""}.items():
        (pkg / f).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PKG", pkg)
    with pytest.raises(AssertionError, match="sweaug.build.executors -> sweaug.build.jobs"):
        test_no_import_circle()
    with pytest.raises(AssertionError, match="sweaug.sources.cv -> sweaug.build.shards"):
        test_every_stage_is_ranked_and_no_stage_imports_a_later_one()
