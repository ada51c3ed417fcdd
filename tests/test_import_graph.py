"""The package's import graph, read with `ast` (imports at the top of a module and inside functions):
no cycles; project imports at the top of modules, except where anygpt/cli.py's contract sanctions a
deferred one and the few listed in DEFERRED; codecs and judges are inference only (no world, no
training code); the world is reached through its public interface only; no private name crosses
modules."""

import ast
from pathlib import Path

import anygpt

ROOT = Path(anygpt.__file__).parent



def modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def _edges(node: ast.AST, name: str, package: bool, mods) -> list[tuple[str, str, str | None]]:
    """(importer, imported module, imported name or None) for the project imports of one import statement."""
    if isinstance(node, ast.Import):
        return [(name, a.name, None) for a in node.names if a.name.split(".")[0] == "anygpt"]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = name if package else name.rpartition(".")[0]
    target = node.module or ""
    if node.level:
        parts = base.split(".")[: len(base.split(".")) - node.level + 1]
        target = ".".join(parts + ([target] if target else []))
    if target.split(".")[0] != "anygpt":
        return []
    edges = []
    for a in node.names:
        full = f"{target}.{a.name}"
        edges.append((name, full, None) if full in mods else (name, target, a.name))
    return edges


def imports(mods) -> list[tuple[str, str, str | None]]:
    """(importer, imported module, imported name or None) for every project import, wherever it sits."""
    edges = []
    for name, (path, package) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            edges += _edges(node, name, package, mods)
    return edges


def deferred_imports(mods) -> list[tuple[str, str, str]]:
    """(importer, function, imported module) for every project import inside a function body;
    `function` is the outermost function that holds it."""
    found = []

    def visit(node: ast.AST, name: str, package: bool, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if function is not None:
                found.extend((src, function, owner(dst, mods)) for src, dst, _ in _edges(child, name, package, mods))
            inner = child.name if function is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else function
            visit(child, name, package, inner)

    for name, (path, package) in mods.items():
        visit(ast.parse(path.read_text(encoding="utf-8")), name, package, None)
    return found


def owner(module: str, mods) -> str:
    while module not in mods:
        module = module.rpartition(".")[0]
    return module


def graph(mods) -> dict[str, set[str]]:
    out = {m: set() for m in mods}
    for src, dst, _ in imports(mods):
        target = owner(dst, mods)
        if target != src:
            out[src].add(target)
    return out


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_graph_reader_sees_function_body_imports():
    mods = modules()
    assert "anygpt.world" in graph(mods)["anygpt.train.codecs.probe"]
    assert "anygpt.train.judges.build" in graph(mods)["anygpt.train.judges.command"]  # inside run_train


# The contract of anygpt/cli.py: a command module keeps a light top level (its parser answers `--help`
# without torch), so its functions import the stage's implementation.
COMMAND_MODULES = ("anygpt.eval.tasks_command",)  # besides every `*.command`

# Project imports left inside a function elsewhere: (importer, imported module) -> why not at the top.
DEFERRED = {
    ("anygpt.eval.tasks", "anygpt.prompts"): "prompts imports torch; `anygpt eval --help` imports tasks.py for TASKS",
    ("anygpt.eval.tasks", "anygpt.eval.conditioning"): "torch (and chat's session); tasks.py is on `eval --help`",
    ("anygpt.eval.tasks", "anygpt.world"): "the world's generator and pyarrow, ~0.5 s on every `anygpt eval` start",
}


def sanctioned(importer: str, function: str, mods) -> bool:
    """A command module's function, or a package's PEP 562 loader (`__getattr__` in its __init__)."""
    if importer.rpartition(".")[2] == "command" or importer in COMMAND_MODULES:
        return True
    return function == "__getattr__" and mods[importer][1]


def test_project_imports_sit_at_the_top_of_modules():
    mods = modules()
    found = deferred_imports(mods)
    bad = sorted({(src, function, dst) for src, function, dst in found
                  if not sanctioned(src, function, mods) and (src, dst) not in DEFERRED})
    assert not bad, f"imports inside functions, neither sanctioned nor in DEFERRED: {bad}"
    stale = sorted(set(DEFERRED) - {(src, dst) for src, _, dst in found})
    assert not stale, f"DEFERRED lists imports that are gone: {stale}"


def test_the_deferred_import_reader_sees_function_bodies():
    mods = modules()
    found = {(src, dst) for src, _, dst in deferred_imports(mods)}
    assert ("anygpt.train.judges.command", "anygpt.train.judges.build") in found  # inside run_train
    assert ("anygpt.train.judges.command", "anygpt.errors") not in found  # at the top
    assert sanctioned("anygpt.bundles", "__getattr__", mods) and not sanctioned("anygpt.bundles", "default_bundle", mods)


def test_no_import_cycles():
    found = [c for c in cycles(graph(modules())) ]
    assert not found, f"import cycles: {found}"


def test_codecs_and_judges_import_neither_the_world_nor_training_code():
    mods = modules()
    bad = sorted((src, dst) for src, targets in graph(mods).items() for dst in targets
                 if src.startswith(("anygpt.codecs", "anygpt.eval.judges"))
                 and dst.startswith(("anygpt.world", "anygpt.train")))
    assert not bad, bad


def test_the_world_is_reached_through_its_public_names_only():
    import anygpt.world

    mods = modules()
    bad = sorted({(src, owner(dst, mods)) for src, dst, _ in imports(mods)
                  if owner(dst, mods).startswith("anygpt.world.") and not src.startswith("anygpt.world")})
    assert not bad, bad
    names = {(src, name) for src, dst, name in imports(mods) if dst == "anygpt.world" and name is not None}
    assert {name for _, name in names} <= set(anygpt.world.__all__), names


def test_no_private_name_crosses_modules():
    mods = modules()
    bad = sorted({(src, dst, name) for src, dst, name in imports(mods)
                  if name is not None and name.startswith("_") and not name.startswith("__")
                  and owner(dst, mods) != src})
    assert not bad, bad
