"""Regions as the control plane sees them: HTTP APIs (health, flags, alerts, metrics)."""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import quote

import httpx

from steadymail.config import RegionRef
from steadymail.errors import SteadymailError
from steadymail.rollout.gates import RATE_SERIES, Evidence


class RegionUnreachable(SteadymailError):
    pass


class HttpRegions:
    """``RegionPort`` over the regions' REST APIs, with short timeouts."""

    def __init__(self, refs: list[RegionRef], timeout: float = 3.0) -> None:
        self._refs = {r.name: r for r in refs}
        self._clients = {
            r.name: httpx.Client(
                base_url=r.url.rstrip("/"),
                headers={"Authorization": f"Bearer {r.api_key.get_secret_value()}"},
                timeout=timeout,
            )
            for r in refs
        }

    @property
    def names(self) -> list[str]:
        return list(self._refs)

    def _call(self, region: str, method: str, path: str, **kw: Any) -> Any:
        client = self._clients.get(region)
        if client is None:
            raise RegionUnreachable(f"unknown region {region!r}")
        try:
            r = client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise RegionUnreachable(f"{region}: {e!r}") from e
        if r.status_code >= 400:
            raise RegionUnreachable(f"{region}: {method} {path} -> {r.status_code} {r.text[:200]}")
        return r.json()

    def get_flag(self, region: str, flag: str) -> Any:
        return self._call(region, "GET", "/v1/flags")["flags"].get(flag)

    def set_flag(self, region: str, flag: str, value: Any, by: str, reason: str) -> None:
        self._call(
            region, "PUT", f"/v1/flags/{flag}", json={"value": value, "by": by, "reason": reason}
        )

    def flag_history(self, region: str, flag: str) -> list[dict[str, Any]]:
        """The region's changes of ``flag``, newest first."""
        return list(self._call(region, "GET", "/v1/flags/history", params={"name": flag}))

    def flag_values(self, region: str) -> dict[str, Any]:
        return dict(self._call(region, "GET", "/v1/flags")["flags"])

    def firing(self, region: str) -> list[dict[str, Any]]:
        return list(self._call(region, "GET", "/v1/alerts", params={"state": "firing"}))

    def note(self, region: str, alert_id: int, text: str) -> None:
        self._call(
            region, "POST", f"/v1/alerts/{alert_id}/notes", json={"by": "control", "text": text}
        )

    def alert(
        self, region: str, fingerprint: str, summary: str, labels: dict[str, Any], detail: str
    ) -> None:
        body = {"fingerprint": fingerprint, "summary": summary, "labels": labels}
        self._call(region, "POST", "/v1/alerts", json={**body, "detail": detail})

    def resolve(self, region: str, fingerprint: str, detail: str) -> None:
        body = {"fingerprint": fingerprint, "detail": detail, "resolve": True}
        self._call(region, "POST", "/v1/alerts", json=body)

    def evidence(
        self, region: str, since: float, until: float, with_rates: bool = True
    ) -> Evidence:
        """Alerts that started in [since, until] and (``with_rates``) rate points in that span."""
        try:
            alerts = [
                a
                for a in self._call(region, "GET", "/v1/alerts", params={"since": since})
                if float(a["started_at"]) <= until
            ]
            minutes = max(1, math.ceil((time.time() - since) / 60) + 1)
            rates = {}
            for series in RATE_SERIES if with_rates else ():
                body = self._call(
                    region, "GET", f"/v1/metrics/series/{series}", params={"minutes": minutes}
                )
                rates[series] = [v for ts, v in body["points"] if since <= ts <= until]
        except RegionUnreachable:
            return Evidence(region, reachable=False)
        return Evidence(region, alerts, rates)

    def health(self, region: str) -> dict[str, Any]:
        """What the dashboard and `rollout status` show of a region."""
        try:
            health = self._call(region, "GET", "/healthz")
            flags = self._call(region, "GET", "/v1/flags")["flags"]
            firing = self._call(region, "GET", "/v1/alerts", params={"state": "firing"})
        except RegionUnreachable as e:
            return {"region": region, "reachable": False, "error": str(e)}
        return {
            "region": region,
            "reachable": True,
            "version": health.get("version"),
            "flags": flags,
            "firing_alerts": [
                {"id": a["id"], "name": a["name"], "summary": a["summary"]} for a in firing
            ],
        }

    def series_names(self, region: str, minutes: float) -> list[str]:
        """The region's metric series with points in the last ``minutes`` (the console)."""
        names = self._call(region, "GET", "/v1/metrics/series", params={"minutes": minutes})
        return [str(n) for n in names]

    def series(self, region: str, name: str, minutes: float) -> dict[str, Any]:
        """One series of the region with its anomaly marks and flag changes (the console)."""
        data: dict[str, Any] = self._call(
            region, "GET", f"/v1/metrics/series/{quote(name, safe='')}", params={"minutes": minutes}
        )
        return data

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
