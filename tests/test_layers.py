"""The layers, checked by reading every module's imports (no module is run).

    server/core/   imports nothing of the rest of server/, nor push/
    push/          imports push/, server/core/ and the store's interface
                   (server/store/__init__.py) only
    server/        imports push/ only where the two are wired: app.py, cli.py
    the log, the views, the bus and the renderings (store/, compliance/, bus/,
                   hub.py, interop/)
                   import no transport or handler (stream/, api/)

A new import that crosses a line fails here with the module and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WIRING = {"server.app", "server.cli"}
STORE_INTERFACE = "server.store"
TRANSPORTS = ("server.stream", "server.api")
NO_TRANSPORTS = (
    "server.store",
    "server.compliance",
    "server.bus",
    "server.hub",
    "server.core",
    "server.interop",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> list[Path]:
    return sorted([*(ROOT / "server").rglob("*.py"), *(ROOT / "push").rglob("*.py")])


def imports(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) for every import, also those inside functions or
    `if TYPE_CHECKING:`: a type-only import still ties the layers together."""
    package = module.split(".")
    if not is_package:
        package.pop()
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            # `from server import settings` imports the module server.settings
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_module(name: str) -> bool:
    """Whether `name` is one of ours (a `from x import y` also yields x.y)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def broken_rule(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`; None when it may."""
    if not within(imported, "server", "push") or not is_module(imported):
        return None  # the standard library, a dependency, or a name inside a module
    if within(importer, "server.core"):
        if not within(imported, "server.core"):
            return "the core imports nothing of the rest of server/ or of push/"
    elif within(importer, "push"):
        if not within(imported, "push", "server.core") and imported != STORE_INTERFACE:
            return "push/ imports only push/, server/core/ and the store's interface"
    elif within(imported, "push") and importer not in WIRING:
        return "server/ imports push/ only where it wires it up (app.py, cli.py)"
    if within(importer, *NO_TRANSPORTS) and within(imported, *TRANSPORTS):
        return "the log, the views and the bus import no transport or handler"
    return None


def violations() -> list[str]:
    found = []
    for path in modules():
        importer = module_name(path)
        source = path.read_text(encoding="utf-8")
        for line, imported in imports(source, importer, path.name == "__init__.py"):
            if reason := broken_rule(importer, imported):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}: {reason}")
    return found


def test_every_module_keeps_to_its_layer() -> None:
    assert violations() == []


def test_the_checker_sees_the_modules() -> None:
    names = {module_name(path) for path in modules()}
    assert {"server.core.events", "push.worker", "server.app", "server.store"} <= names


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("server.core.topics", "server.domain"),
        ("server.core.frames", "push.payload"),
        ("push.worker", "server.settings"),
        ("push.process", "server.store.sqlite"),
        ("push.service", "server.bus"),
        ("server.settings", "push.vapid"),
        ("server.api.push", "push.service"),
        ("server.hub", "server.stream.sender"),
        ("server.compliance.service", "server.stream.feed"),
    ],
)
def test_a_crossing_import_is_named(importer: str, imported: str) -> None:
    assert broken_rule(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("push.worker", "server.store"),
        ("push.worker", "server.core.topics"),
        ("server.app", "push.service"),
        ("server.cli", "push.queue"),
        ("server.stream.feed", "server.hub"),
        ("server.core.topics", "server.core.errors"),
    ],
)
def test_an_allowed_import_passes(importer: str, imported: str) -> None:
    assert broken_rule(importer, imported) is None


def test_a_relative_import_is_resolved() -> None:
    source = "from . import events\nfrom ..store import open_store\n"
    found = list(imports(source, "server.core.example"))
    assert (1, "server.core.events") in found and (2, "server.store") in found
    assert broken_rule("server.core.example", "server.store") is not None
