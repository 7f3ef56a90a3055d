from __future__ import annotations

import re
from pathlib import Path

import pytest

import draas_actors.policy
from draas_actors.policy import (
    GiveUp,
    Restart,
    RestartHistory,
    RestartMode,
    RestartPolicy,
    backoff_delay,
    is_failure,
    plan_restart,
    starts_with_control_plane,
    wants_restart,
)

# Many evenly spread values plus the ends of [0, 1): a property check without a property-testing library.
RANDS = [i / 997 for i in range(997)] + [0.0, 1e-12, 0.5, 1.0 - 1e-12]

# -- wants_restart, is_failure, starts_with_control_plane ------------------------------------------


def _expected_restart(mode: RestartMode, exit_code: int | None, operator_stopped: bool) -> bool:
    if operator_stopped or mode is RestartMode.NEVER:
        return False
    if mode is RestartMode.ON_FAILURE:
        return exit_code != 0
    return True


@pytest.mark.parametrize("mode", list(RestartMode))
@pytest.mark.parametrize("exit_code", [0, 1, 3, -9, None])
@pytest.mark.parametrize("operator_stopped", [False, True])
def test_wants_restart_follows_the_mode_the_exit_code_and_the_operators_stop(
    mode: RestartMode, exit_code: int | None, operator_stopped: bool
) -> None:
    policy = RestartPolicy(mode=mode)
    assert wants_restart(policy, exit_code=exit_code, operator_stopped=operator_stopped) is _expected_restart(
        mode, exit_code, operator_stopped
    )


def test_an_operators_stop_is_never_undone_by_any_mode() -> None:
    for mode in RestartMode:
        for code in (0, 1, None):
            assert not wants_restart(RestartPolicy(mode=mode), exit_code=code, operator_stopped=True)


def test_on_failure_uses_the_custom_success_codes() -> None:
    policy = RestartPolicy(mode=RestartMode.ON_FAILURE, success_exit_codes=frozenset({0, 3}))
    assert not wants_restart(policy, exit_code=3, operator_stopped=False)
    assert not wants_restart(policy, exit_code=0, operator_stopped=False)
    assert wants_restart(policy, exit_code=1, operator_stopped=False)


def test_an_unknown_exit_code_counts_as_a_failure() -> None:
    assert is_failure(RestartPolicy(), None)


def test_zero_is_success_by_default_and_anything_else_fails() -> None:
    policy = RestartPolicy()
    assert not is_failure(policy, 0)
    assert is_failure(policy, 1)
    assert is_failure(policy, -15)


def test_custom_success_codes_replace_the_default() -> None:
    policy = RestartPolicy(success_exit_codes=frozenset({2, 143}))
    assert not is_failure(policy, 2)
    assert not is_failure(policy, 143)
    assert is_failure(policy, 0)


@pytest.mark.parametrize(
    ("mode", "operator_stopped", "expected"),
    [
        (RestartMode.ALWAYS, False, True),
        (RestartMode.ALWAYS, True, True),
        (RestartMode.UNLESS_STOPPED, False, True),
        (RestartMode.UNLESS_STOPPED, True, False),
        (RestartMode.ON_FAILURE, False, False),
        (RestartMode.NEVER, False, False),
    ],
)
def test_always_undoes_an_operators_stop_at_control_plane_start_but_unless_stopped_does_not(
    mode: RestartMode, operator_stopped: bool, expected: bool
) -> None:
    policy = RestartPolicy(mode=mode)
    assert starts_with_control_plane(policy, operator_stopped=operator_stopped) is expected


# -- backoff_delay ------------------------------------------------------------------------------------


@pytest.mark.parametrize("series", [-1, 0, 1])
def test_the_first_restart_of_a_series_is_immediate(series: int) -> None:
    policy = RestartPolicy(initial_backoff=5.0, max_backoff=60.0)
    for rand in RANDS:
        assert backoff_delay(policy, series, rand) == 0.0


def test_without_jitter_the_delay_grows_geometrically_from_the_second_restart() -> None:
    policy = RestartPolicy(initial_backoff=0.5, multiplier=3.0, max_backoff=1000.0, jitter=0.0)
    assert [backoff_delay(policy, n, 0.7) for n in range(1, 7)] == [0.0, 0.5, 1.5, 4.5, 13.5, 40.5]


def test_without_jitter_the_delay_is_capped_at_max_backoff() -> None:
    policy = RestartPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=10.0, jitter=0.0)
    assert [backoff_delay(policy, n, 0.3) for n in range(2, 9)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_a_multiplier_of_one_keeps_the_delay_constant() -> None:
    policy = RestartPolicy(initial_backoff=2.0, multiplier=1.0, max_backoff=10.0, jitter=0.0)
    assert {backoff_delay(policy, n, 0.5) for n in range(2, 50)} == {2.0}


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.2, 0.5, 0.99])
def test_jittered_delays_stay_within_the_jitter_band_and_under_the_cap(jitter: float) -> None:
    policy = RestartPolicy(initial_backoff=0.1, multiplier=2.0, max_backoff=30.0, jitter=jitter)
    for series in range(2, 20):
        base = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (series - 2))
        for rand in RANDS:
            delay = backoff_delay(policy, series, rand)
            assert 0.0 <= delay <= policy.max_backoff
            assert base * (1 - jitter) - 1e-12 <= delay <= base * (1 + jitter) + 1e-12


def test_rand_zero_gives_the_bottom_of_the_band() -> None:
    policy = RestartPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=100.0, jitter=0.2)
    assert backoff_delay(policy, 3, 0.0) == pytest.approx(2.0 * 0.8)


def test_rand_approaching_one_approaches_the_top_of_the_band() -> None:
    policy = RestartPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=100.0, jitter=0.2)
    assert backoff_delay(policy, 3, 1.0 - 1e-12) == pytest.approx(2.0 * 1.2)
    assert backoff_delay(policy, 3, 0.5) == pytest.approx(2.0)


def test_jitter_on_a_capped_delay_never_goes_above_max_backoff() -> None:
    policy = RestartPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=5.0, jitter=0.5)
    delays = [backoff_delay(policy, 10, rand) for rand in RANDS]
    assert max(delays) == 5.0
    assert min(delays) == pytest.approx(2.5)


def test_the_delay_is_monotonic_in_rand() -> None:
    policy = RestartPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=100.0, jitter=0.3)
    delays = [backoff_delay(policy, 4, rand) for rand in sorted(RANDS)]
    assert delays == sorted(delays)


def test_a_zero_initial_backoff_means_no_delay_at_all() -> None:
    policy = RestartPolicy(initial_backoff=0.0, max_backoff=0.0)
    assert {backoff_delay(policy, n, r) for n in range(1, 30) for r in (0.0, 0.5, 0.99)} == {0.0}


def test_a_very_long_crash_loop_stays_at_the_cap_instead_of_overflowing() -> None:
    # A policy with a small window never exhausts its budget, so the series number grows without bound.
    policy = RestartPolicy(initial_backoff=0.1, multiplier=2.0, max_backoff=30.0, jitter=0.0)
    assert backoff_delay(policy, 5000, 0.5) == 30.0
    assert backoff_delay(RestartPolicy(initial_backoff=0.0, max_backoff=30.0), 5000, 0.5) == 0.0


# -- plan_restart -------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


def test_the_first_restart_is_immediate_and_starts_a_series() -> None:
    decision = plan_restart(RestartPolicy(), RestartHistory(), now=NOW, ran_for=0.5, rand=0.9)
    assert isinstance(decision, Restart)
    assert decision.delay == 0.0
    assert decision.history == RestartHistory(restart_times=(NOW,), series=1)


def test_quick_crashes_continue_the_series_with_growing_delays() -> None:
    policy = RestartPolicy(initial_backoff=0.1, multiplier=2.0, jitter=0.0, reset_after=10.0)
    history = RestartHistory()
    delays = []
    now = NOW
    for _ in range(5):
        decision = plan_restart(policy, history, now=now, ran_for=1.0, rand=0.5)
        assert isinstance(decision, Restart)
        delays.append(decision.delay)
        history = decision.history
        now += decision.delay + 1.0
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8])
    assert history.series == 5


def test_a_long_healthy_run_resets_the_series_so_the_next_restart_is_immediate() -> None:
    policy = RestartPolicy(reset_after=10.0, jitter=0.0)
    history = RestartHistory(restart_times=(NOW - 200,), series=6)
    decision = plan_restart(policy, history, now=NOW, ran_for=10.0, rand=0.5)
    assert isinstance(decision, Restart)
    assert decision.delay == 0.0
    assert decision.history.series == 1


def test_a_run_just_short_of_reset_after_does_not_reset_the_series() -> None:
    policy = RestartPolicy(reset_after=10.0, jitter=0.0, initial_backoff=0.1)
    history = RestartHistory(restart_times=(NOW - 20,), series=3)
    decision = plan_restart(policy, history, now=NOW, ran_for=9.99, rand=0.5)
    assert isinstance(decision, Restart)
    assert decision.history.series == 4
    assert decision.delay == pytest.approx(0.4)


def test_the_restart_time_recorded_is_when_the_restart_will_happen() -> None:
    policy = RestartPolicy(jitter=0.0, initial_backoff=2.0, max_backoff=10.0)
    decision = plan_restart(policy, RestartHistory(series=1), now=NOW, ran_for=0.0, rand=0.5)
    assert isinstance(decision, Restart)
    assert decision.history.restart_times == (NOW + 2.0,)


def test_max_restarts_within_the_window_gives_up_with_the_budget_reason() -> None:
    policy = RestartPolicy(max_restarts=3, window=60.0)
    history = RestartHistory(restart_times=(NOW - 50, NOW - 20, NOW - 1), series=3)
    decision = plan_restart(policy, history, now=NOW, ran_for=0.1, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "restart budget exhausted"
    assert decision.history.restart_times == history.restart_times


def test_restarts_older_than_the_window_fall_out_of_the_budget() -> None:
    policy = RestartPolicy(max_restarts=3, window=60.0, jitter=0.0)
    history = RestartHistory(restart_times=(NOW - 120, NOW - 61, NOW - 1), series=3)
    decision = plan_restart(policy, history, now=NOW, ran_for=0.1, rand=0.5)
    assert isinstance(decision, Restart)
    assert decision.history.restart_times == (NOW - 1, NOW + decision.delay)


def test_a_restart_exactly_one_window_ago_no_longer_counts() -> None:
    policy = RestartPolicy(max_restarts=1, window=60.0)
    decision = plan_restart(policy, RestartHistory(restart_times=(NOW - 60,)), now=NOW, ran_for=0.0, rand=0.5)
    assert isinstance(decision, Restart)


def test_a_zero_budget_never_restarts() -> None:
    decision = plan_restart(RestartPolicy(max_restarts=0), RestartHistory(), now=NOW, ran_for=100.0, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "restart budget exhausted"


def test_a_crash_loop_gives_up_after_exactly_max_restarts() -> None:
    policy = RestartPolicy(max_restarts=4, window=3600.0, initial_backoff=0.1, jitter=0.2)
    history = RestartHistory()
    now = NOW
    restarts = 0
    for _ in range(20):
        decision = plan_restart(policy, history, now=now, ran_for=0.1, rand=0.99)
        history = decision.history
        if isinstance(decision, GiveUp):
            break
        restarts += 1
        now += decision.delay + 0.1
    assert restarts == 4
    assert isinstance(decision, GiveUp)


# -- RestartPolicy validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial_backoff": -1.0}, "initialBackoff"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"initial_backoff": 5.0, "max_backoff": 1.0}, "maxBackoff"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"reset_after": -1.0}, "resetAfter"),
        ({"max_restarts": -1}, "maxRestarts"),
        ({"window": 0.0}, "window"),
    ],
)
def test_an_out_of_range_policy_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=rf"restartPolicy\.{field}\b"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


def test_the_defaults_are_a_valid_policy() -> None:
    policy = RestartPolicy()
    assert policy.mode is RestartMode.ON_FAILURE
    assert policy.success_exit_codes == frozenset({0})


# -- what the defaults add up to --------------------------------------------------------------------


def crash_loop_seconds(rand: float) -> float:
    """Seconds from the first crash of a process that dies at once to the give-up, under the default policy."""
    policy, history, now = RestartPolicy(), RestartHistory(), 0.0
    for _ in range(policy.max_restarts + 1):
        decision = plan_restart(policy, history, now=now, ran_for=0.0, rand=rand)
        if isinstance(decision, GiveUp):
            return now
        now += decision.delay
        history = decision.history
    raise AssertionError("the default policy never gave up")


def test_the_documented_length_of_a_crash_loop_is_what_the_default_policy_does() -> None:
    middle = crash_loop_seconds(0.5)  # no jitter: 0.1 s doubling to 25.6 s, nine delays
    assert middle == pytest.approx(51.1)
    assert crash_loop_seconds(0.0) == pytest.approx(middle * 0.8)
    assert crash_loop_seconds(1.0 - 1e-12) == pytest.approx(middle * 1.2 - 0.72)  # 25.6 s + 20 % is capped at 30 s
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    docstring = draas_actors.policy.__doc__ or ""
    for text in (readme, docstring):
        stated = re.search(r"about (\d+) s", " ".join(text.split()))
        assert stated is not None
        assert abs(int(stated.group(1)) - middle) <= 5, stated.group(0)
