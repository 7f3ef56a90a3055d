"""The push client's pure parts and its spool, without a network: delays, Retry-After, what is retried, the spool."""

from __future__ import annotations

import email.utils
import json
import logging
from pathlib import Path

import pytest

from daemons.push_client import (
    PushClient,
    PushSettings,
    PushStats,
    _Throttle,
    is_retryable,
    parse_retry_after,
    retry_delays,
)
from daemons.spool import Spool, SpoolClosed, SpoolLocked

NOW = 1_700_000_000.0

# -- the delay sequence -----------------------------------------------------------------------------


@pytest.mark.parametrize(("initial", "maximum"), [(0.1, 30.0), (0.01, 0.05), (1.0, 1.0)])
def test_every_retry_delay_lies_between_zero_and_the_capped_exponential_ceiling(initial: float, maximum: float) -> None:
    for _ in range(200):
        delays = retry_delays(initial, maximum)
        for n in range(16):
            assert 0.0 <= next(delays) <= min(maximum, initial * 2**n)


def test_the_jitter_spreads_each_delay_over_its_whole_range_and_the_ceiling_doubles_up_to_the_cap() -> None:
    samples = [[next(d) for _ in range(6)] for d in (retry_delays(0.1, 1.0) for _ in range(3000))]
    for n, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        column = [row[n] for row in samples]
        # Full jitter: the values reach both ends of [0, ceiling] (3000 draws miss a 10% band with p ~ 1e-137).
        assert max(column) > 0.9 * ceiling
        assert min(column) < 0.1 * ceiling
        assert max(column) <= ceiling


# -- Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5)])
def test_retry_after_in_seconds_is_taken_as_is(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_as_an_http_date_is_the_time_left_until_then() -> None:
    in_thirty_seconds = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(in_thirty_seconds, now=NOW) == pytest.approx(30.0)


def test_retry_after_as_an_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW - 60, usegmt=True), now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "nan", "inf", "Fri, 99 Foo 2024 99:99:99 GMT", "5 seconds"])
def test_a_missing_or_garbage_retry_after_gives_none_so_the_backoff_decides(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


# -- which answers are retried ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_timeouts_throttling_and_server_errors_are_retried(status: int) -> None:
    assert is_retryable(status)


@pytest.mark.parametrize("status", [200, 202, 400, 401, 403, 404, 409, 413, 422])
def test_other_answers_are_final(status: int) -> None:
    assert not is_retryable(status)


def test_the_throttle_lets_one_warning_through_per_interval_and_counts_the_rest() -> None:
    clock = [0.0]
    throttle = _Throttle(10.0, clock=lambda: clock[0])
    assert throttle.allow() == 0
    clock[0] = 9.9
    assert [throttle.allow(), throttle.allow()] == [None, None]
    clock[0] = 10.0
    assert throttle.allow() == 2


# -- the spool --------------------------------------------------------------------------------------


def test_the_spool_gives_items_back_oldest_first_across_appends(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_items=100)
    try:
        spool.append(["a", "b"])
        spool.append(["c"])
        spool.append(["d", "e", "f"])
        assert [i.body for i in spool.peek(4)] == ["a", "b", "c", "d"]
        assert [i.body for i in spool.peek(100)] == ["a", "b", "c", "d", "e", "f"]
        seqs = [i.seq for i in spool.peek(100)]
        assert seqs == sorted(seqs)
    finally:
        spool.close()


def test_a_full_spool_drops_the_oldest_items_and_returns_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_items=3)
    try:
        assert spool.append(["a", "b", "c"]) == []
        assert [i.body for i in spool.append(["d"])] == ["a"]
        assert [i.body for i in spool.append(["e", "f"])] == ["b", "c"]
        assert [i.body for i in spool.peek(10)] == ["d", "e", "f"]
        assert len(spool) == 3
        # More than the bound at once: only the newest fit.
        assert [i.body for i in spool.append(["g", "h", "i", "j"])] == ["d", "e", "f", "g"]
        assert [i.body for i in spool.peek(10)] == ["h", "i", "j"]
    finally:
        spool.close()


def test_items_leave_the_spool_only_when_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_items=10)
    try:
        spool.append(["a", "b", "c"])
        first = spool.peek(2)
        assert spool.peek(2) == first  # reading is not consuming
        assert spool.remove([first[0].seq]) == 1
        assert [i.body for i in spool.peek(10)] == ["b", "c"]
        assert spool.remove([first[0].seq]) == 0  # already gone: counted once
        assert len(spool) == 2
    finally:
        spool.close()


def test_a_sequence_number_is_never_reused_so_a_late_removal_cannot_hit_a_newer_item(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_items=1)
    try:
        spool.append(["old"])
        (in_flight,) = spool.peek(1)
        spool.append(["new"])  # drops "old" for room while it is "in flight"
        assert spool.remove([in_flight.seq]) == 0
        assert [i.body for i in spool.peek(1)] == ["new"]
    finally:
        spool.close()


def test_the_spool_survives_reopening_in_order_and_keeps_numbering_forward(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "spool.db"
    spool = Spool(path, max_items=10)
    spool.append(["a", "b", "c"])
    spool.remove([spool.peek(1)[0].seq])
    last_seq = spool.peek(10)[-1].seq
    spool.close()

    reopened = Spool(path, max_items=10)
    try:
        assert len(reopened) == 2
        assert [i.body for i in reopened.peek(10)] == ["b", "c"]
        reopened.append(["d"])
        assert reopened.peek(10)[-1].seq > last_seq
    finally:
        reopened.close()


def test_reopening_with_a_smaller_bound_trims_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, max_items=10)
    spool.append(["a", "b", "c", "d"])
    spool.close()
    smaller = Spool(path, max_items=2)
    try:
        assert [i.body for i in smaller.trim()] == ["a", "b"]
        assert [i.body for i in smaller.peek(10)] == ["c", "d"]
    finally:
        smaller.close()


def test_a_spool_has_one_owner_at_a_time_and_refuses_use_after_close(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, max_items=10)
    with pytest.raises(SpoolLocked):
        Spool(path, max_items=10)
    spool.close()
    with pytest.raises(SpoolClosed):
        spool.append(["a"])
    Spool(path, max_items=10).close()  # free again once closed


# -- the client's spooling, with the sender never started ---------------------------------------------


def settings(tmp_path: Path, **overrides: object) -> PushSettings:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:9",  # never contacted: these tests do not start the sender
        "api_key": "k",
        "spool_path": tmp_path / "push" / "spool.db",
    }
    return PushSettings(**{**values, **overrides})  # type: ignore[arg-type]


def test_submitted_updates_are_spooled_with_an_observed_time_and_outlive_the_client(tmp_path: Path) -> None:
    client = PushClient(settings(tmp_path))
    client.submit([{"instanceId": "a", "status": "Running", "source": "t"}])
    client.submit([{"instanceId": "b", "status": "Running", "source": "t", "observedAt": 12.5}])
    assert client.stats == PushStats(submitted=2, pending=2)
    client.close(timeout=0.1)

    spool = Spool(tmp_path / "push" / "spool.db", max_items=10)
    try:
        bodies = [json.loads(i.body) for i in spool.peek(10)]
    finally:
        spool.close()
    assert [b["instanceId"] for b in bodies] == ["a", "b"]
    assert isinstance(bodies[0]["observedAt"], float)  # stamped at submit, so a late replay is not "newer"
    assert bodies[1]["observedAt"] == 12.5  # the source's own time is kept


def test_a_full_client_spool_drops_the_oldest_counts_each_and_warns_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="daemons.push_client")
    client = PushClient(settings(tmp_path, spool_max_items=3))
    try:
        for i in range(7):
            client.submit([{"instanceId": f"i{i}", "status": "Running", "source": "t"}])
        assert client.stats == PushStats(submitted=7, dropped_full=4, pending=3)
        warnings = [r for r in caplog.records if "spool full" in r.getMessage()]
        assert len(warnings) == 1
        assert '"instanceId":"i0"' in warnings[0].getMessage()
    finally:
        client.close(timeout=0.1)


def test_an_update_that_is_not_json_is_refused_and_nothing_is_spooled(tmp_path: Path) -> None:
    client = PushClient(settings(tmp_path))
    try:
        with pytest.raises(ValueError):
            client.submit([{"instanceId": "a", "status": "Running", "source": "t", "metadata": {"x": float("nan")}}])
        with pytest.raises(TypeError):
            client.submit([{"instanceId": "a", "status": "Running", "source": "t", "metadata": {"x": object()}}])
        assert client.stats == PushStats()
    finally:
        client.close(timeout=0.1)


@pytest.mark.parametrize(
    "overrides",
    [{"batch_max": 0}, {"spool_max_items": 0}, {"read_timeout": 0}, {"backoff_initial": 1.0, "backoff_max": 0.5}],
    ids=["batch_max", "spool_max_items", "read_timeout", "backoff_max"],
)
def test_settings_out_of_range_are_refused_at_once(tmp_path: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        settings(tmp_path, **overrides)
