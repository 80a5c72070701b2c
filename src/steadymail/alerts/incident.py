"""An incident's timeline as a Markdown postmortem: symptom, detection, mitigation, resumption."""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from steadymail.store import alerts as alert_store
from steadymail.store import events as event_store
from steadymail.store.alerts import Alert, AlertWithTimeline
from steadymail.store.events import PlatformEvent

_BEFORE = 300.0  # how far back to look for the first symptom


@dataclass(frozen=True)
class Entry:
    at: float
    phase: str  # symptom | detection | notification | mitigation | resumption | resolution | note
    text: str
    send: int | None = None
    resent: int = 0
    quarantined: int = 0


def _ts(t: float | None) -> str:
    if t is None:
        return "—"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _from_platform(ev: PlatformEvent) -> Entry | None:
    d = ev.detail
    if ev.kind == "process_exited":
        return Entry(ev.at, "symptom", f"{d.get('slot')} exited ({d.get('reason')})")
    if ev.kind == "lease_reclaimed":
        return Entry(
            ev.at,
            "mitigation",
            f"batch {d['batch']} of send {d['send']} reclaimed "
            f"by {d['by']}; {d['at_risk']} in-flight messages re-sent",
            send=int(d["send"]),
            resent=int(d["at_risk"]),
        )
    if ev.kind == "message_quarantined":
        return Entry(
            ev.at,
            "mitigation",
            f"message {d['message']} quarantined: {d['reason']}",
            quarantined=1,
        )
    return None


_PHASES = {
    "fired": "detection",
    "notified": "notification",
    "mitigation": "mitigation",
    "resolved": "resolution",
    "acknowledged": "note",
    "silenced": "note",
    "update": "note",
}


def collect(
    engine: Engine, alert_id: int, now: float
) -> tuple[AlertWithTimeline, list[Entry], list[Alert]]:
    main = alert_store.get(engine, alert_id)
    start, end = main.started_at - _BEFORE, (main.resolved_at or now) + 60
    region = main.labels.get("region")
    related = [
        a
        for a in alert_store.overlapping(engine, main.started_at - 60, end)
        if region is None or a.labels.get("region") in (None, region)
    ]
    entries: list[Entry] = []
    for a in related:
        for e in alert_store.get(engine, a.id).timeline:
            phase = _PHASES.get(e.kind, "note")
            if a.name == "send_stalled" and e.kind == "resolved":
                phase = "resumption"
            entries.append(Entry(e.at, phase, f"[{a.name} #{a.id}] {e.detail}"))
    for ev in event_store.between(engine, start, end):
        entry = _from_platform(ev)
        if entry and (region is None or ev.region == region):
            entries.append(entry)
    entries.sort(key=lambda e: e.at)
    return main, entries, related


def export_markdown(engine: Engine, alert_id: int, now: float) -> str:
    """The postmortem skeleton for the incident around alert `alert_id`."""
    main, entries, related = collect(engine, alert_id, now)

    def first(phase: str) -> float | None:
        return next((e.at for e in entries if e.phase == phase), None)

    symptom = first("symptom") or main.started_at
    detected = first("detection")
    resumed = first("resumption") or first("resolution")
    sends = {int(a.labels["send"]) for a in related if a.labels.get("send") is not None}
    sends |= {e.send for e in entries if e.send is not None}
    resent = sum(e.resent for e in entries)
    quarantined = sum(e.quarantined for e in entries)
    related_names = ", ".join(f"#{a.id} {a.name}" for a in related)

    def took(a: float | None, b: float | None) -> str:
        return f"{b - a:.1f} s" if a is not None and b is not None else "—"

    lines = [
        f"# Incident {main.id}: {main.summary}",
        "",
        f"- Severity: {main.severity}; state: {main.state}; labels: "
        + ", ".join(f"{k}={v}" for k, v in sorted(main.labels.items())),
        f"- First symptom: {_ts(symptom)}",
        f"- Detected: {_ts(detected)} ({took(symptom, detected)} after the first symptom)",
        f"- Mitigations: {sum(1 for e in entries if e.phase == 'mitigation')}",
        f"- Resumed: {_ts(resumed)} ({took(symptom, resumed)} after the first symptom)",
        f"- Resolved: {_ts(main.resolved_at)}",
        f"- Affected sends: {len(sends)} ({', '.join(str(s) for s in sorted(sends)) or 'none'}); "
        f"messages re-sent after a crash: {resent}; quarantined: {quarantined}",
        f"- Related alerts: {related_names}",
        "",
        "## Timeline (UTC)",
        "",
        "| time | phase | what |",
        "|---|---|---|",
    ]
    lines += [f"| {_ts(e.at)} | {e.phase} | {e.text.replace('|', '/')} |" for e in entries]
    lines += [
        "",
        "## Root cause",
        "",
        "_To be written._",
        "",
        "## What we will change",
        "",
        "_To be written._",
        "",
    ]
    return "\n".join(lines)
