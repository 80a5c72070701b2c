"""What a send's messages came to, read back whole: for the incident replay's count of sent,
lost, quarantined and duplicated messages after a run (sim/replay.py)."""

from dataclasses import dataclass

from sqlalchemy import Engine, select

from steadymail.store.schema import messages, sends


@dataclass(frozen=True)
class Outcome:
    email: str
    state: str
    sent_at: float | None
    crashes: int


def outcomes(engine: Engine, send_id: int, *, crashed_only: bool = False) -> list[Outcome]:
    """Every message of the send; `crashed_only`: those a crashing worker had in flight."""
    q = select(messages.c.email, messages.c.state, messages.c.sent_at, messages.c.crashes).where(
        messages.c.send_id == send_id
    )
    if crashed_only:
        q = q.where(messages.c.crashes > 0)
    with engine.connect() as conn:
        return [
            Outcome(str(r.email), str(r.state), r.sent_at, int(r.crashes)) for r in conn.execute(q)
        ]


def resent_after_crash(engine: Engine, send_id: int) -> int:
    """Messages the send delivered again after a crash (the duplicates it counted)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(sends.c.resent_after_crash).where(sends.c.id == send_id)
            ).scalar_one()
        )
