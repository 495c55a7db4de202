"""The package's layers, read from the source: imports run one way, there is no import circle, no module takes
another's private name, and the API's functions keep their names whatever subpackage is imported.

Imports inside functions count, and so do ``lazy_import("...")`` and ``importlib.import_module("...")`` with a
literal name. Layers, from the top: cli, the API (``kerasapps`` and ``kerasapps.api``), then tools, serving and
the recipes (side by side, importing none of each other), savedmodel, training, models and data (side by
side), core.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"kerasapps": REPO / "kerasapps", "kerasapps.recipes": REPO / "recipes", "kerasapps.cli": REPO / "cli"}
RANKS = {"kerasapps.core": 0, "kerasapps.data": 1, "kerasapps.models": 1, "kerasapps.training": 2,
         "kerasapps.savedmodel": 3, "kerasapps.serving": 4, "kerasapps.tools": 4, "kerasapps.recipes": 4,
         "kerasapps.api": 5, "kerasapps": 5, "kerasapps.cli": 6}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    if module == "kerasapps.api":
        return "kerasapps"  # the package's face and the API are one layer
    for prefix in sorted(RANKS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(f"{module} is in no layer")


def _imports(module: str, path: Path, ours_only: bool = True) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in ``path``, wherever it stands: of our
    modules only, or (``ours_only=False``) of every package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "lazy_import", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node.args[0].value, [], node.lineno))
    return [(target, names, line) for target, names, line in found
            if not ours_only or target.split(".")[0] == "kerasapps"]


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for target, names, _ in _imports(module, path):
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
            for imported in submodules or [target]:
                if imported in MODULES and imported != module:
                    edges[module].add(imported)
    return edges


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 60
    for module in MODULES:
        _layer(module)


def test_imports_run_down_the_layers_only():
    upward = []
    for module, targets in _edges().items():
        for target in targets:
            mine, theirs = _layer(module), _layer(target)
            if mine == theirs or target == "kerasapps":
                continue  # within one package; "import kerasapps" only binds the top package (checked below)
            if RANKS[theirs] >= RANKS[mine]:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_only_the_command_line_imports_the_api():
    for module, path in MODULES.items():
        for target, names, line in _imports(module, path):
            if target == "kerasapps.api" or (target == "kerasapps" and names != ["__version__"]):
                assert _layer(module) in ("kerasapps.cli", "kerasapps"), f"{module}:{line} imports the API"


def test_there_is_no_import_circle():
    edges = _edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_module_takes_another_modules_private_name():
    taken = [f"{module}:{line} takes {name} from {target}"
             for module, path in MODULES.items() for target, names, line in _imports(module, path)
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert not taken, taken


# the internals of our dependencies: modules that are not their public API, and private attributes we once used
INTERNAL_MODULES = ("keras.src", "tensorflow.python", "uvicorn.protocols", "uvicorn.lifespan", "starlette._")
PRIVATE_ATTRIBUTES = {"_flatten_layers", "_inbound_nodes", "_trainable_variables", "_model_variables_moving_average",
                      "_exclude_from_weight_decay", "_var_key", "_unset_keepalive_if_required", "_seed_generators"}
COMPAT = "kerasapps.core.compat"


def test_no_private_name_of_a_dependency_outside_the_compat_module():
    """Keras's, TensorFlow's and uvicorn's internals are reached through ``kerasapps.core.compat`` only, where
    ``tests/core/test_compat.py`` checks each against the installed version."""
    found = []
    for module, path in MODULES.items():
        if module == COMPAT:
            continue
        ours = ("kerasapps", "__future__")
        for target, names, line in _imports(module, path, ours_only=False):
            if target.startswith(ours):
                continue
            if target.startswith(INTERNAL_MODULES) or any(part.startswith("_") for part in target.split(".")):
                found.append(f"{module}:{line} imports {target}")
            found += [f"{module}:{line} takes {name} from {target}" for name in names
                      if name.startswith("_") and not name.startswith("__")]
        found += [f"{module}:{node.lineno} reads .{node.attr}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES]
    assert not found, found


def test_no_module_is_named_after_the_standard_library_or_vaguely():
    import sys

    vague = {"practice", "pictures", "utils", "helpers", "misc", "common", "stuff"}
    for module in MODULES:
        leaf = module.rsplit(".", 1)[-1]
        assert leaf not in sys.stdlib_module_names, module
        assert leaf not in vague, module


def test_the_api_keeps_its_functions_whatever_subpackage_is_imported():
    """A subpackage named like an API function (``kerasapps.export``) would replace it on import."""
    import importlib

    import kerasapps

    for module in MODULES:
        if module.startswith("kerasapps.") and not module.startswith(("kerasapps.recipes", "kerasapps.cli")):
            importlib.import_module(module)
    for name in kerasapps.__all__:
        if name != "__version__":
            assert inspect.isfunction(getattr(kerasapps, name)), name


@pytest.mark.parametrize("name", ["train", "evaluate", "export", "predict", "serve", "generate", "tune",
                                  "diagnose_init", "diagnose_overfit", "diagnose_lr", "diagnose_filters",
                                  "diagnose_features", "info", "list_recipes"])
def test_the_api_has_real_signatures_and_docstrings(name):
    import kerasapps

    function = getattr(kerasapps, name)
    parameters = inspect.signature(function).parameters.values()
    assert function.__doc__ and len(function.__doc__) > 60
    assert not [p for p in parameters if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)], name


def test_one_version_number():
    import kerasapps
    from kerasapps.core.version import __version__

    assert kerasapps.__version__ == __version__
    assert "version = attr: kerasapps.core.version.__version__" in (REPO / "setup.cfg").read_text()
    hits = [path for path in [*REPO.joinpath("kerasapps").rglob("*.py"), *REPO.joinpath("cli").rglob("*.py")]
            if f'"{__version__}"' in path.read_text()]
    assert hits == [REPO / "kerasapps" / "core" / "version.py"]


def _requirements() -> tuple[str, set[str]]:
    """setup.cfg's ``python_requires`` and the names of ``install_requires`` (normalised, extras dropped)."""
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    return config["options"]["python_requires"], {re.split(r"[\[<>=!;~ ]", line)[0].lower().replace("_", "-")
                                                  for line in lines}


def test_every_imported_package_is_declared_and_python_requires_holds_for_them():
    """What the package imports (top-level names outside the standard library) is in ``install_requires``, and
    ``python_requires`` asks for no older Python than the declared packages need (keras 3.15: 3.11)."""
    import importlib.metadata
    import sys

    from packaging.specifiers import SpecifierSet

    python_requires, declared = _requirements()
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "kerasapps":
                    continue
                owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not owners & declared:
                    missing.add(f"{top} ({', '.join(sorted(owners))}) in {path.relative_to(REPO)}")
    assert not missing, sorted(missing)
    ours = SpecifierSet(python_requires)
    oldest = min(v for v in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13") if v in ours)
    for name in sorted(declared):
        needs = importlib.metadata.metadata(name).get("Requires-Python")
        if needs:
            assert oldest in SpecifierSet(needs), f"{name} needs Python {needs}; python_requires is {python_requires}"
