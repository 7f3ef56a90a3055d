"""The directory of instance actors: what the supervisor writes, any thread reads."""

from __future__ import annotations

from typing import Any, cast

import pykka

from draas_actors.actors.refs import Directory, Entry
from draas_actors.model import Platform


def entry(name: str) -> Entry:
    # A stand-in: the directory stores refs, it never calls them.
    return Entry(cast(pykka.ActorRef[Any], name), Platform.DOCKER, 1.0)


def test_an_entry_put_is_found_until_it_is_popped() -> None:
    directory = Directory()
    directory.put("web-1", entry("a"))

    assert directory.get("web-1") == entry("a") and "web-1" in directory and len(directory) == 1
    assert directory.pop("web-1") == entry("a")
    assert directory.get("web-1") is None and "web-1" not in directory and len(directory) == 0
    assert directory.pop("web-1") is None


def test_a_snapshot_does_not_change_with_the_directory() -> None:
    directory = Directory()
    directory.put("web-1", entry("a"))
    snapshot = directory.snapshot()

    directory.put("web-2", entry("b"))
    directory.put("web-1", entry("c"))

    assert snapshot == {"web-1": entry("a")}
