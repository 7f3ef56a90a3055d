"""One compared figure (ours beside a peer) and the side-by-side table every benchmark prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .stats import median, p99


@dataclass(frozen=True)
class Metric:
    """Both sides' samples in milliseconds and the target that applies to ours."""

    label: str
    ours: list[float]
    peer: list[float]
    peer_name: str  # names the peer's columns and JSON keys ("supervisord", "naive")
    target_stat: str  # "median" or "p99"
    target_ms: float

    @staticmethod
    def stat(xs: list[float], which: str) -> float:
        return median(xs) if which == "median" else p99(xs)

    @property
    def passed(self) -> bool:
        return self.stat(self.ours, self.target_stat) <= self.target_ms

    def summary(self) -> dict[str, Any]:
        """Median, p99 and peer/ours ratios, ready for JSON."""
        out: dict[str, Any] = {"label": self.label, "samples": len(self.ours)}
        for which in ("median", "p99"):
            ours, peer = self.stat(self.ours, which), self.stat(self.peer, which)
            out[f"ours_{which}_ms"] = ours
            out[f"{self.peer_name}_{which}_ms"] = peer
            out[f"ratio_{which}"] = peer / ours if ours > 0 else None
        out.update(target=f"{self.target_stat} <= {self.target_ms:g} ms", passed=self.passed)
        return out


def ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 100 else f"{x:.0f} ms"


def table(title: str, metrics: list[Metric], *, ratio_digits: int = 0) -> list[str]:
    """The title line and an aligned table: both sides' median and p99, how many times faster, the target."""
    peer = metrics[0].peer_name
    header = ("metric", "ours median", "ours p99", f"{peer} median", f"{peer} p99",
              "faster (median)", "faster (p99)", "target (ours)", "result")
    rows = [header]
    for metric in metrics:
        s = metric.summary()
        rows.append((
            metric.label, ms(s["ours_median_ms"]), ms(s["ours_p99_ms"]), ms(s[f"{peer}_median_ms"]),
            ms(s[f"{peer}_p99_ms"]), _ratio(s["ratio_median"], ratio_digits), _ratio(s["ratio_p99"], ratio_digits),
            s["target"], "PASS" if metric.passed else "MISS",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _ratio(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:,.{digits}f}x"
