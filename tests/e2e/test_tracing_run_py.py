"""Tracing as the README configures it: run.py under ``opentelemetry-instrument`` (opentelemetry-distro) with the
SDK's console exporter, so that its spans are printed on run.py's stdout. A push's traceparent is continued by the
control plane's span, and the change keeps the traceparent of that span."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .conftest import DAEMON_KEY, RunPy

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")


def printed_spans(text: str) -> list[dict[str, Any]]:
    """The console exporter prints each span as an indented JSON object, one after the other."""
    decoder, spans, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        span, index = decoder.raw_decode(text, index)
        spans.append(span)
    return spans


def test_run_py_under_opentelemetry_instrument_continues_a_pushed_trace(
    run_py: RunPy, config: Path, tmp_path: Path
) -> None:
    otel = {
        "OTEL_SERVICE_NAME": "draas-control-plane", "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
    }
    stdout = tmp_path / "run.stdout"
    # "--": opentelemetry-instrument would take run.py's --config for an abbreviation of its own options.
    plane = run_py.start(config=config, env=otel, launcher=(INSTRUMENT, "--"), stdout=stdout)
    pushed = plane.session.post(
        plane.url + "/api/status/updates", timeout=10,
        json={"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"},
        headers={"X-API-Key": DAEMON_KEY, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    assert pushed.status_code == 202, pushed.text
    [change] = plane.changes_after(0)
    assert run_py.stop(plane) == 0  # the SDK's batch processor exports at exit

    [span] = [s for s in printed_spans(stdout.read_text()) if s["name"] == "POST /api/status/updates"]
    assert span["kind"] == "SpanKind.SERVER"
    assert span["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert span["parent_id"] == f"0x{PARENT_ID}"
    assert span["resource"]["attributes"]["service.name"] == "draas-control-plane"
    assert change["traceparent"] == f"00-{TRACE_ID}-{span['context']['span_id'][2:]}-01"
