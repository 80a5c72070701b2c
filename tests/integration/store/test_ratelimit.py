"""The shared relay rate limit never grants more than the limit in one second."""

from sqlalchemy import Engine

from steadymail.store import ratelimit


def test_grants_are_shared_and_reset_each_second(engine: Engine) -> None:
    t = 5000.2
    grants = [ratelimit.take(engine, "relay:25", 20, 8, t) for _ in range(4)]
    assert grants == [8, 8, 4, 0]  # two "workers" drawing from one window
    assert ratelimit.take(engine, "other:25", 20, 8, t) == 8  # per relay
    assert ratelimit.take(engine, "relay:25", 20, 8, t + 1) == 8  # next second
