"""Nothing in the package is written and never read: a counter nobody reads, a function nobody calls.

A text-level check (like vulture's, narrower): tests reading a name do not count as a use.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted(path for package in ("draas_actors", "daemons", "bench") for path in (ROOT / package).rglob("*.py"))]
SOURCES.append(ROOT / "run.py")
# Read by a library, not by our code: waitress reads its dispatcher's and channel's counters and calls
# handler_thread; pykka calls an actor class's _create_actor_inbox and _create_future; __version__ is for packaging.
READ_ELSEWHERE = {"active_count", "current_outbuf_count", "total_outbufs_len", "handler_thread", "__version__",
                  "_create_actor_inbox", "_create_future"}
# The push client's outbox counts its snapshots and store checks for the tests to wait on (nothing else reads
# them); ProcessPlatform keeps whether it became the subreaper for a reader in a debugger. Kept knowingly.
KEPT = {"snapshots", "store_checks", "subreaper"}


def _trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in SOURCES}


def test_no_attribute_of_ours_is_written_and_never_read() -> None:
    stored: dict[str, str] = {}
    read: set[str] = set()
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name) and node.value.id == "self":
                    stored.setdefault(node.attr, str(path.relative_to(ROOT)))
                elif isinstance(node.ctx, ast.Load):
                    read.add(node.attr)
            elif isinstance(node, ast.Name):
                read.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                read.add(node.value)  # getattr(x, "name")
    unread = {name: where for name, where in stored.items() if name not in read | READ_ELSEWHERE | KEPT}
    assert unread == {}


def _is_click_command(definition: ast.FunctionDef | ast.ClassDef) -> bool:
    """Decorated ``@<group>.command(...)`` or ``.group(...)``: draasctl's commands, which click calls by name."""
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "group")
        for d in definition.decorator_list
    )


def test_every_function_class_and_method_of_the_package_is_used_outside_its_definition() -> None:
    words = Counter(re.findall(r"\w+", "\n".join(path.read_text() for path in SOURCES)))
    unused: list[str] = []
    for path, tree in _trees().items():
        if ROOT / "draas_actors" not in path.parents:
            continue
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else []
            for definition in (node, *members):
                if not isinstance(definition, (ast.FunctionDef, ast.ClassDef)):
                    continue
                name = definition.name
                if name.startswith(("__", "on_")) or name in READ_ELSEWHERE or _is_click_command(definition):
                    continue  # dunders, falcon's and pykka's responders/hooks, and click's commands: the library calls
                if words[name] <= 1:
                    unused.append(f"{path.relative_to(ROOT)}: {name}")
    assert unused == []
