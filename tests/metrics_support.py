"""Reading Prometheus metrics in tests: the exposition parsed by prometheus_client's own parser, and one value."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.helpers import HTTP_TIMEOUT, wait_until


def samples_of(text: str) -> list[Sample]:
    """Every sample of a text exposition (counters appear as ``<name>_total``)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def scrape(url: str, key: str | None = None) -> list[Sample]:
    """GET ``url`` (a /metrics), expecting a 200 in the text format."""
    headers = {"X-API-Key": key} if key is not None else {}
    response = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples_of(response.text)


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def label_values(samples: list[Sample]) -> set[str]:
    return {v for s in samples for v in s.labels.values()}


def scrape_until(url: str, name: str, at_least: float, timeout: float = 15.0, **labels: str) -> list[Sample]:
    """Scrape ``url`` until ``name{labels}`` is at least ``at_least`` (what is counted moves after the answer that
    caused it, and a daemon's server may not listen yet); that scrape."""

    def reached() -> list[Sample] | None:
        try:
            samples = scrape(url)
        except requests.ConnectionError:
            return None
        return samples if value(samples, name, **labels) >= at_least else None

    return wait_until(reached, timeout, 0.05, f"{name}{labels} reaches {at_least} at {url}")
