"""Who gets a connection slot: a cap per address, a general pool, and a reserve that only authenticated or busy
connections keep (draas_actors/api/admission.py)."""

from __future__ import annotations

from dataclasses import dataclass

from draas_actors.api.admission import Admission, ConnectionRules, Pool
from draas_actors.security import parse_network


@dataclass(eq=False)
class FakeConnection:
    address: str
    pool: Pool
    waiting_since: float
    authenticated: bool = False
    serving: bool = False

    def busy(self) -> bool:
        return self.serving


def rules(**overrides: object) -> ConnectionRules:
    values: dict[str, object] = {
        "connection_limit": 2, "reserved_connections": 2, "connections_per_address": 3, "uncapped": (),
    }
    return ConnectionRules(**{**values, **overrides})  # type: ignore[arg-type]


def open_from(
    admission: Admission, address: str, at: float, authenticated: bool = False, serving: bool = False
) -> FakeConnection | None:
    decision = admission.admit(address)
    if decision is None:
        return None
    pool, victim = decision
    if victim is not None:
        admission.closed(victim)
    held = FakeConnection(address, pool, at, authenticated, serving)
    admission.opened(held)
    return held


def test_the_general_pool_fills_first_then_the_reserve() -> None:
    admission = Admission(rules())
    pools = [getattr(open_from(admission, f"10.0.0.{n}", n), "pool", None) for n in range(4)]
    assert pools == [Pool.GENERAL, Pool.GENERAL, Pool.RESERVE, Pool.RESERVE]
    assert admission.counts() == {"general": 2, "reserve": 2, "addresses": 4}


def test_a_newcomer_replaces_the_reserve_connection_that_has_waited_longest_without_authenticating() -> None:
    admission = Admission(rules())
    for n in range(2):
        open_from(admission, f"10.0.0.{n}", n)
    kept = open_from(admission, "10.0.1.1", 2, authenticated=True)
    serving = open_from(admission, "10.0.1.2", 3, serving=True)
    assert admission.admit("10.0.2.1") is None
    assert serving is not None
    serving.serving = False

    decision = admission.admit("10.0.2.1")

    assert decision == (Pool.RESERVE, serving)
    assert kept is not None and kept.pool is Pool.RESERVE


def test_a_newcomer_is_refused_when_every_reserve_connection_is_authenticated() -> None:
    admission = Admission(rules())
    for n in range(4):
        open_from(admission, f"10.0.0.{n}", n, authenticated=True)
    assert admission.admit("10.0.2.1") is None


def test_one_address_over_its_cap_replaces_its_own_unauthenticated_then_longest_waiting_connection() -> None:
    admission = Admission(rules(connection_limit=10))
    oldest = open_from(admission, "127.0.0.1", 0, authenticated=True)
    busy = open_from(admission, "127.0.0.1", 1, serving=True)
    idle = open_from(admission, "127.0.0.1", 2)
    assert admission.admit("127.0.0.2") == (Pool.GENERAL, None)

    assert admission.admit("127.0.0.1") == (Pool.GENERAL, idle)
    assert idle is not None
    admission.closed(idle)
    assert admission.admit("127.0.0.1") == (Pool.GENERAL, None)
    open_from(admission, "127.0.0.1", 3, serving=True)
    assert admission.admit("127.0.0.1") == (Pool.GENERAL, oldest)
    assert oldest is not None and busy is not None
    oldest.serving = True
    assert admission.admit("127.0.0.1") is None  # every one of its connections is serving a request


def test_trusted_proxies_are_not_capped_per_address() -> None:
    admission = Admission(rules(connection_limit=10, uncapped=(parse_network("10.1.0.0/16"),)))
    for n in range(5):
        open_from(admission, "10.1.2.3", n)
    assert admission.admit("10.1.2.3") == (Pool.GENERAL, None)
    assert admission.counts()["general"] == 5
