"""A small client of Prometheus' HTTP API (``/api/v1/...``), with the standard library only.

Used by the observability tests (tests/cluster/test_observability.py) and by
``python -m devcluster.promcli figures|chart`` (the end of ``make demo``).
Every call returns the ``data`` member of the API's JSON answer and raises
:class:`PrometheusAPIError` with Prometheus' own error text otherwise.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["PrometheusAPI", "PrometheusAPIError", "value_of"]


class PrometheusAPIError(RuntimeError):
    pass


def value_of(sample: dict[str, Any]) -> float:
    """The float value of an instant-vector sample (``{"metric": ..., "value": [t, "v"]}``)."""
    return float(sample["value"][1])


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        address = f"{self.url}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400/422/503 carry the API's JSON error
            try:
                body = json.load(error)
            except ValueError:
                raise PrometheusAPIError(f"GET {address}: HTTP {error.code}") from error
        if body.get("status") != "success":
            raise PrometheusAPIError(f"GET {address}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """An instant query; a scalar result comes back as one sample without labels."""
        data = self._get("/api/v1/query", query=expr, time=time)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def rules(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Rule groups with each rule's health, last error and (alerts) state; ``kind`` is record or alert."""
        return self._get("/api/v1/rules", type=kind)["groups"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending or firing) with labels, annotations, state and activeAt."""
        return self._get("/api/v1/alerts")["alerts"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def series(self, match: str, start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        return self._get("/api/v1/series", **{"match[]": match, "start": start, "end": end})

    def metadata(self) -> dict[str, list[dict[str, str]]]:
        """Metric family metadata (type, help, unit) of the scraped targets."""
        return self._get("/api/v1/metadata")

    def scalar(self, expr: str, time: float | None = None) -> float | None:
        """The value of a query returning at most one sample; None when it returns none (or NaN)."""
        result = self.query(expr, time)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusAPIError(f"{expr} returned {len(result)} samples, expected at most one")
        value = value_of(result[0])
        return None if math.isnan(value) else value
