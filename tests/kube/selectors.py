"""Label and field selectors as kube-apiserver parses them, and the filter one list or watch applies to pods."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """A label or field selector that does not parse; the message names it."""


_DNS_SUBDOMAIN = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY = rf"(?:{_DNS_SUBDOMAIN}/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"^({_KEY})$")
_NOT_EXISTS = re.compile(rf"^!\s*({_KEY})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_COMPARE = re.compile(rf"^({_KEY})\s*(>|<)\s*(-?\d+)$")
_SET_VALUE = re.compile(rf"^{_VALUE}$")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9.]*)\s*(==|!=|=)\s*(.*)$")

# Field selectors kube-apiserver supports for pods (pkg/registry/core/pod/strategy.go), minus the list-valued ones.
POD_FIELDS: Final[dict[str, Callable[[dict[str, Any]], str]]] = {
    "metadata.name": lambda pod: pod["metadata"].get("name", ""),
    "metadata.namespace": lambda pod: pod["metadata"].get("namespace", ""),
    "spec.nodeName": lambda pod: (pod.get("spec") or {}).get("nodeName") or "",
    "spec.restartPolicy": lambda pod: (pod.get("spec") or {}).get("restartPolicy") or "",
    "spec.schedulerName": lambda pod: (pod.get("spec") or {}).get("schedulerName") or "",
    "spec.serviceAccountName": lambda pod: (pod.get("spec") or {}).get("serviceAccountName") or "",
    "status.phase": lambda pod: (pod.get("status") or {}).get("phase") or "",
    "status.podIP": lambda pod: (pod.get("status") or {}).get("podIP") or "",
    "status.nominatedNodeName": lambda pod: (pod.get("status") or {}).get("nominatedNodeName") or "",
}


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` is two requirements)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str) -> Predicate:
    """A predicate on a labels dict; raises ``SelectorError`` naming the selector and the bad requirement."""
    if not text.strip():
        return lambda labels: True
    requirements = [_label_requirement(part.strip(), text) for part in _split_top_level(text)]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def _label_requirement(part: str, selector: str) -> Predicate:
    def bad(why: str) -> SelectorError:
        return SelectorError(f"labelSelector {selector!r}: unable to parse requirement {part!r}: {why}")

    if match := _NOT_EXISTS.match(part):
        key = match[1]
        return lambda labels: key not in labels
    if match := _SET.match(part):
        key, operator = match[1], match[2]
        values = {value.strip() for value in match[3].split(",")}
        if not all(_SET_VALUE.match(value) for value in values):
            raise bad("a value in the set is not a valid label value")
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(part):
        key, operator, value = match[1], match[2], match[3]
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _COMPARE.match(part):
        return _comparison(match[1], match[2] == ">", int(match[3]))
    if _EXISTS.match(part):
        return lambda labels: part in labels
    raise bad("expected 'key', '!key', 'key=value', 'key!=value', 'key in (...)' or 'key notin (...)'")


def _comparison(key: str, greater: bool, bound: int) -> Predicate:
    def compare(labels: dict[str, Any]) -> bool:
        try:
            value = int(labels[key])
        except (KeyError, ValueError):
            return False
        return value > bound if greater else value < bound

    return compare


def parse_field_selector(text: str) -> Predicate:
    """A predicate on a pod; raises ``SelectorError`` naming the selector and the bad term or field."""
    if not text.strip():
        return lambda pod: True
    terms: list[Predicate] = []
    for part in text.split(","):
        match = _FIELD.match(part.strip())
        if not match:
            raise SelectorError(
                f"fieldSelector {text!r}: invalid selector {part!r}: expected field=value or field!=value"
            )
        name, operator, value = match[1], match[2], match[3].strip()
        getter = POD_FIELDS.get(name)
        if getter is None:
            raise SelectorError(f"fieldSelector {text!r}: field label not supported: {name}")
        terms.append(_field_term(getter, operator == "!=", value))
    return lambda pod: all(term(pod) for term in terms)


def _field_term(getter: Callable[[dict[str, Any]], str], negate: bool, value: str) -> Predicate:
    return lambda pod: (getter(pod) == value) != negate


@dataclass
class PodFilter:
    """What one list or watch asks for: a namespace (None: all), a label and a field selector."""

    namespace: str | None
    labels: Predicate
    fields: Predicate

    def matches(self, pod: dict[str, Any] | None) -> bool:
        if pod is None:
            return False
        metadata = pod["metadata"]
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        return self.labels(metadata.get("labels") or {}) and self.fields(pod)

    def translate(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
        """The event type a watcher with this filter sees, or None: starting to match is ADDED, ceasing DELETED."""
        now = self.matches(new)
        if kind != "MODIFIED":
            return kind if now else None
        before = self.matches(old)
        if before and now:
            return "MODIFIED"
        if now:
            return "ADDED"
        return "DELETED" if before else None
