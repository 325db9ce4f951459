"""The package's layering (issue 17) and rooms (issue 30): every module imports alone, the import
graph has no cycle, the foundation never imports a method, methods never import each other, the
torch-free layer stays torch-free, and each method of ``weaksup.methods.METHODS`` has its code,
configs, docs and tests in its own folders, so adding one touches nothing else but that list."""

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "weaksup"
FOUNDATION = (
    "weaksup.data",
    "weaksup.modeling",
    "weaksup.evaluation",
    "weaksup.pseudo",
    "weaksup.engine",
    "weaksup.registry",
    "weaksup.paths",
)
# Modules above the foundation and the methods: the config composition, the registration and
# the command-line pieces shared by the tools and the shipped configs (they load configs).
TOP = ("weaksup.config", "weaksup.registration", "weaksup.cli", "weaksup.model_zoo")
TORCH_FREE = ("weaksup.pseudo",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Dict[str, Path] = {
    _module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "__pycache__" not in p.parts
}


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """Absolute name of a ``from ... import`` statement's module inside ``module``."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_parents(name: str) -> List[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c`` (each that is a weaksup module)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES]


def _imports(module: str, top_level_only: bool) -> Set[str]:
    """Modules (weaksup ones with their packages, others by name) imported by ``module``: at
    module level only (what runs on import), or anywhere in it."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: Set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for n in names:
            out.update(_with_parents(n) if n.split(".")[0] == "weaksup" else [n])
    out.discard(module)
    return out


def test_module_list_is_the_package():
    assert "weaksup.methods.boxcaseg.pipeline" in MODULES and "weaksup.pseudo.job" in MODULES
    assert len(MODULES) > 60


def test_import_graph_has_no_cycle():
    graph = {m: {n for n in _imports(m, True) if n in MODULES} for m in MODULES}
    state: Dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(m: str, stack: List[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            # a package importing its own submodules (and they it) is Python's normal layout
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n] if n in stack else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, FOUNDATION)))
def test_foundation_never_imports_a_method(module):
    bad = sorted(n for n in _imports(module, False) if _within(n, ("weaksup.methods",) + TOP))
    assert not bad, f"{module} (foundation) imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, ("weaksup.methods",))))
def test_methods_never_import_each_other_or_registration(module):
    parts = module.split(".")
    own = ".".join(parts[:3])
    bad = sorted(
        n
        for n in _imports(module, False)
        if (_within(n, ("weaksup.methods",)) and n != "weaksup.methods" and not _within(n, (own,)))
        or n == "weaksup.registration"
    )
    assert not bad, f"{module} imports {bad}"


def test_method_config_modules_import_nothing_of_weaksup():
    for m in MODULES:
        if m.startswith("weaksup.methods.") and m.endswith(".config"):
            assert not [n for n in _imports(m, False) if n.startswith("weaksup")], m


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, TORCH_FREE)))
def test_torch_free_layer_imports_no_torch(module):
    bad = sorted(n for n in _imports(module, False) if n.split(".")[0] in ("torch", "detectron2"))
    assert not bad, f"{module} (torch-free layer) imports {bad}"


_IMPORT_EACH = r"""
import importlib, os, sys, traceback
preload, names = sys.argv[1].split(","), sys.argv[2:]
for name in preload:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "weaksup"]
failed = []
for name in names:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", " ".join(failed))
"""


@pytest.mark.slow
def test_every_module_imports_alone():
    """Each module imported first, in a fresh process that has imported no weaksup module yet
    (forked from one that preloaded only the other packages weaksup imports, to keep the test
    short): an import circle would raise ImportError on a partly initialised module."""
    others = sorted({n for m in MODULES for n in _imports(m, True) if not n.startswith("weaksup")})
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    r = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, ",".join(others), *sorted(MODULES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    failed = r.stdout.strip().splitlines()[-1].split()[1:]
    assert not failed, f"modules that fail to import alone: {failed}\n{r.stderr[-4000:]}"


@pytest.mark.parametrize(
    "module",
    [
        "weaksup",
        "weaksup.pseudo",
        "weaksup.pseudo.job",
        "weaksup.methods.wei.localization",
        "weaksup.methods.boxsup.labelling",
    ],
)
def test_light_modules_import_without_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'detectron2') if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]", f"{module} imports {r.stdout.strip()}"


def test_add_weaksup_config_registers_everything():
    code = (
        "from weaksup import add_weaksup_config\n"
        "from detectron2.modeling import META_ARCH_REGISTRY\n"
        "from weaksup.engine import PIPELINE_REGISTRY, HOOK_REGISTRY\n"
        "print(sorted(k for k, _ in META_ARCH_REGISTRY), sorted(k for k, _ in PIPELINE_REGISTRY),"
        " sorted(k for k, _ in HOOK_REGISTRY))"
    )
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in (
        "BoxCaseg",
        "BoxSupSegmentor",
        "DASNet",
        "HCP",
        "HybridNetwork",
        "Hybrid",
        "Wei",
        "BoxSupLabelUpdate",
        "LossCurve",
        "PredictionOverlays",
    ):
        assert f"'{name}'" in r.stdout, (name, r.stdout)


def _methods():
    from weaksup.methods import METHODS

    return METHODS


def test_method_list_is_the_method_folders():
    folders = {p.parent.name for p in (PACKAGE_DIR / "methods").glob("*/__init__.py")}
    assert folders == set(_methods())


@pytest.mark.parametrize("package", sorted(_methods()))
def test_each_method_has_its_rooms(package):
    name = _methods()[package]
    config = f"weaksup.methods.{package}.config"
    assert config in MODULES, f"{package} has no config.py"
    defs = {
        n.name
        for n in ast.parse(MODULES[config].read_text()).body
        if isinstance(n, ast.FunctionDef)
    }
    assert f"add_{package}_config" in defs, f"{config} has no add_{package}_config"
    assert (REPO / "configs" / name).is_dir(), f"configs/{name}/ missing"
    assert (REPO / "docs" / f"{package}.md").is_file(), f"docs/{package}.md missing"
    assert list((REPO / "tests" / "methods" / package).glob("test_*.py")), package


def test_top_level_configs_are_shared_bases_and_method_folders():
    names = set(_methods().values())
    for p in (REPO / "configs").iterdir():
        if p.is_dir():
            assert p.name in names, f"configs/{p.name}/ is no method's folder"
        else:
            # configs/boxcaseg_coco.yaml: the main command's path (points into configs/BoxCaseg)
            assert p.name.startswith("Base-") or p.name == "boxcaseg_coco.yaml", p


@pytest.mark.parametrize("module", sorted(TOP))
def test_composition_names_no_method(module):
    """config, registration and cli reach the methods through METHODS only."""
    bad = sorted(n for n in _imports(module, False) if n.startswith("weaksup.methods."))
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize(
    "path",
    sorted(p for d in ("foundation", "tools") for p in (REPO / "tests" / d).glob("test_*.py")),
    ids=lambda p: p.name,
)
def test_shared_tests_import_no_method(path):
    """A method's tests live in tests/methods/<method>/ (the layout checks here excepted)."""
    if path.name == "test_layout.py":
        return
    tree = ast.parse(path.read_text())
    names = [
        a.name if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for a in (node.names if isinstance(node, ast.Import) else [None])
    ]
    assert not [n for n in names if n.startswith("weaksup.methods.")], path
