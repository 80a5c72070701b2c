"""The shared relay rate limit never grants more than the limit in one second."""

from sqlalchemy import Engine

from steadymail.store import ratelimit


def test_grants_are_shared_and_reset_each_second(engine: Engine) -> None:
    t = 5000.2
    grants = [ratelimit.take(engine, "relay:25", 20, 8, t) for _ in range(4)]
    assert grants == [8, 8, 4, 0]  # two "workers" drawing from one window
    assert ratelimit.take(engine, "other:25", 20, 8, t) == 8  # per relay
    assert ratelimit.take(engine, "relay:25", 20, 8, t + 1) == 8  # next second


def test_a_holder_of_the_window_row_never_makes_others_wait(engine: Engine) -> None:
    """A worker frozen holding the row (PostgreSQL ends its session later) costs the others
    their grants for a moment, never a wait on its lock (which would fail them at lock_timeout
    and hold their threads)."""
    import pytest
    from sqlalchemy import select

    from steadymail.store.schema import relay_windows

    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: its busy timeout is the bound there")
    t = 6000.5
    assert ratelimit.take(engine, "relay:25", 20, 4, t) == 4
    with engine.begin() as frozen:
        frozen.execute(
            select(relay_windows).where(relay_windows.c.relay == "relay:25").with_for_update()
        ).one()
        assert ratelimit.take(engine, "relay:25", 20, 4, t) is None  # locked: try again
    assert ratelimit.take(engine, "relay:25", 20, 4, t) == 4


def test_a_host_whose_clock_is_behind_never_moves_the_window_back(engine: Engine) -> None:
    """Hosts' clocks differ by milliseconds: a take from a host still in the previous second
    gets nothing rather than resetting the window another host already moved on."""
    assert ratelimit.take(engine, "relay:25", 20, 15, 7001.02) == 15
    assert ratelimit.take(engine, "relay:25", 20, 15, 7000.99) == 0  # behind: not a reset
    assert ratelimit.take(engine, "relay:25", 20, 15, 7001.5) == 5  # the window kept its count
