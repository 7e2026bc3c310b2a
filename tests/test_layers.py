"""The pack's layers import one way: clock/ (which step an evaluation belongs to) under
attention/ (the recorder), under samplers/ (the delayed negative) and render/ (pictures of maps),
all under nodes/ (ComfyUI's node classes). A reader finds each idea below what uses it, and a
change to a lower layer cannot be undone by a higher one. See docs/architecture.md."""

import ast
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "clock": set(),
    "attention": {"clock"},
    "samplers": {"clock", "attention"},
    "render": {"attention"},
    "nodes": {"clock", "attention", "samplers", "render"},
}


def pack_imports(path: Path) -> set[str]:
    """The pack's top-level packages a module imports (relative imports that leave its package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level >= 2:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    wrong = {f"{path.relative_to(PACK_ROOT)} imports {', '.join(sorted(imported - ALLOWED[layer]))}"
             for path in sorted((PACK_ROOT / layer).glob("*.py"))
             for imported in [pack_imports(path) - {layer}] if imported - ALLOWED[layer]}
    assert not wrong, sorted(wrong)


def test_every_package_of_the_pack_has_its_place():
    # devtools/ is the project's own tooling (set-up, generated models, benchmarks): ComfyUI never loads it.
    packages = {path.parent.name for path in PACK_ROOT.glob("*/__init__.py")} - {"devtools"}
    assert packages == set(ALLOWED), "a new package needs its place in ALLOWED (and docs/architecture.md)"
