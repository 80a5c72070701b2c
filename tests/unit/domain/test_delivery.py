import random

from hypothesis import given
from hypothesis import strategies as st

from steadymail.domain.delivery import (
    BackoffPolicy,
    Outcome,
    classify_reply,
    deferral_expired,
    next_attempt_delay,
)

POLICY = BackoffPolicy(base=60, maximum=3600, max_age=86400, jitter=0.2)


def test_reply_classes() -> None:
    assert classify_reply(250, "ok", at_rcpt=False).outcome == Outcome.SENT
    assert classify_reply(451, "try later", at_rcpt=True).outcome == Outcome.DEFER
    bounce = classify_reply(550, "no such user", at_rcpt=True)
    assert bounce.outcome == Outcome.BOUNCE and bounce.hard
    assert not classify_reply(554, "content rejected", at_rcpt=False).hard


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_bounded_and_jittered(attempts: int, seed: int) -> None:
    delay = next_attempt_delay(POLICY, attempts, random.Random(seed))
    nominal = min(POLICY.maximum, POLICY.base * 2 ** (attempts - 1))
    assert nominal * 0.8 <= delay <= nominal * 1.2


def test_backoff_grows_until_the_cap() -> None:
    no_jitter = BackoffPolicy(base=10, maximum=100, max_age=1000, jitter=0)
    rng = random.Random(0)
    assert [next_attempt_delay(no_jitter, a, rng) for a in range(1, 6)] == [10, 20, 40, 80, 100]


def test_deferral_expires_at_max_age() -> None:
    assert not deferral_expired(POLICY, 1000.0, 1000.0 + 86399)
    assert deferral_expired(POLICY, 1000.0, 1000.0 + 86400)
