"""What containers and pods share: their state arrives as a daemon's reports, and an exit is a report with an exit
code, which a daemon's resync may list again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..messages import StatusReport
from ..model import Status, StopCause, is_alive
from . import Host, Judged


class ReportedExits:
    """Turns a daemon's exit reports into exits of the instance, each exit once."""

    __slots__ = ("exited_workload", "host")

    def __init__(self, host: Host) -> None:
        self.host = host
        # The workload whose exit was handled last, until it is seen alive again: a daemon lists an exited workload
        # again at every resync, with a newer observedAt, and that listing is not a new exit.
        self.exited_workload: str | None = None

    def judge(self, report: StatusReport, observed: Mapping[str, float], workload: str | None) -> Judged:
        record = self.host.record
        if is_alive(report.status):
            self.exited_workload = None
            return Judged.APPLY
        if report.status not in (Status.FAILED, Status.STOPPED):
            return Judged.APPLY
        if report.exit_code is not None:
            self._on_exit(report, observed, workload)
            return Judged.DONE
        if record.status is Status.STOPPING:
            # Docker's "kill" comes before the exit itself: stay Stopping until the exit arrives.
            self.host.update(source=report.source, last_observed=observed)
            return Judged.DONE
        return Judged.APPLY

    def _on_exit(self, report: StatusReport, observed: Mapping[str, float], workload: str | None) -> None:
        record = self.host.record
        exit_code = report.exit_code
        duplicate = (
            record.last_exit_at is not None and report.observed_at <= record.last_exit_at
        ) or (workload is not None and workload == self.exited_workload)
        self.exited_workload = workload
        ran_for = report.observed_at - record.status_since if is_alive(record.status) else 0.0
        common: dict[str, Any] = dict(
            source=report.source, metadata=report.metadata, last_observed=observed, workload_id=workload,
            last_exit_code=exit_code, last_exit_at=max(report.observed_at, record.last_exit_at or 0.0),
        )
        if duplicate:
            self.host.update(**common)  # a replay of an exit we have handled: restart nothing twice
            return
        reason = report.metadata.get("reason") or f"exited with code {exit_code}"
        cause = StopCause.CRASHED if report.status is Status.FAILED else StopCause.EXITED  # as the daemon judged it
        self.host.exited(report.status, reason, cause, ran_for, **common)
