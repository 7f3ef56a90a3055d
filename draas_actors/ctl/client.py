"""The HTTP client of the control plane's API: one place that sends, and turns every refusal into ``ApiError``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from .contexts import Target

TIMEOUT = 10.0  # seconds to connect and between bytes of an answer: one stuck server never hangs a command


class ApiError(Exception):
    """The API refused (its ``error``, ``detail`` and ``field``), or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


def refusal(response: requests.Response) -> ApiError:
    """An ``ApiError`` from an answer's JSON error body (``{"error", "detail", "field"}``), or its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        message = f"{body['error']}: {detail}" if detail else str(body["error"])
        field = body.get("field")
        return ApiError(message, status=response.status_code, field=field if isinstance(field, str) else None)
    text = response.text.strip()[:200] or response.reason
    return ApiError(f"HTTP {response.status_code}: {text}", status=response.status_code)


class Client:
    def __init__(self, target: Target, *, session: requests.Session | None = None, timeout: float = TIMEOUT) -> None:
        self.target = target
        self.session = session or requests.Session()
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
    ) -> requests.Response:
        """The answer when it is a 2xx; ``ApiError`` otherwise, or when the server cannot be reached."""
        sent = dict(headers or {})
        if self.target.api_key:
            sent["X-API-Key"] = self.target.api_key
        try:
            response = self.session.request(
                method, self.target.url + path, params=params, json=json, headers=sent, timeout=timeout or self.timeout,
                stream=stream,
            )
        except requests.RequestException as error:
            raise ApiError(f"cannot reach {self.target.url} ({self.target.source}): {error}") from error
        if response.status_code >= 400:
            if response.status_code == 401 and not self.target.api_key:
                raise ApiError(
                    "the API needs a key: set DRAAS_API_KEY, or a context's with "
                    "`draasctl config set-context NAME --api-key KEY`", status=401, field="DRAAS_API_KEY",
                )
            raise refusal(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body).json()

    def delete(self, path: str, **params: Any) -> None:
        self.request("DELETE", path, params=params)

    def close(self) -> None:
        self.session.close()
