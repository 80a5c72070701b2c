"""What an SMTP outcome means for a message: sent, deferred (with when), bounced or failed."""

import random
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    DEFER = "defer"
    BOUNCE = "bounce"
    # The connection failed before the relay gave a verdict: retry elsewhere, then defer.
    CONNECTION = "connection"
    # Not attempted: the platform's own limit (a warm-up cap) holds it until `retry_at`.
    HELD = "held"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    code: int
    detail: str
    # True when the relay refused the recipient itself: the address is bad, suppress it.
    hard: bool = False
    # HELD: when it may go.
    retry_at: float = 0.0


def classify_reply(code: int, detail: str, *, at_rcpt: bool) -> Verdict:
    """Map an SMTP reply code to a verdict (RFC 5321 §4.2.1)."""
    if 200 <= code < 300:
        return Verdict(Outcome.SENT, code, detail)
    if 400 <= code < 500:
        return Verdict(Outcome.DEFER, code, detail)
    if 500 <= code < 600:
        return Verdict(Outcome.BOUNCE, code, detail, hard=at_rcpt)
    return Verdict(Outcome.CONNECTION, code, detail)


@dataclass(frozen=True)
class BackoffPolicy:
    base: float
    maximum: float
    max_age: float
    jitter: float


def next_attempt_delay(policy: BackoffPolicy, attempts: int, rng: random.Random) -> float:
    """Exponential backoff with multiplicative jitter; `attempts` counts tries made so far."""
    delay = min(policy.maximum, policy.base * 2.0 ** max(0, attempts - 1))
    spread = delay * policy.jitter
    return max(0.0, delay + rng.uniform(-spread, spread))


def deferral_expired(policy: BackoffPolicy, first_attempt_at: float, now: float) -> bool:
    """True once a message has been deferred for longer than the policy allows."""
    return now - first_attempt_at >= policy.max_age
