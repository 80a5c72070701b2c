"""Fair share between sends, on SQLite and PostgreSQL: a short send started behind a long one
is not left waiting for the long one's end.

The smallest sizes that show it: a 20,000-message campaign through a relay limited to 200
messages a second (100 s of sending) and a 100-message campaign started once the long one is
under way. Claimed oldest first, the short one would wait until the long one's 199 earlier
batches were all claimed; shared out, it takes the next free worker slot.
"""

import asyncio
from typing import Any

from sqlalchemy import Engine, func, select

from steadymail.config import RelaySettings
from steadymail.domain.states import MessageState
from steadymail.store.schema import messages
from tests.conftest import Recorder
from tests.helpers import running, send_state, text_campaign, wait_until_async, worker_for


def sent(engine: Engine, send_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.send_id == send_id, messages.c.state == MessageState.SENT.value)
            ).scalar_one()
        )


def test_a_short_send_behind_a_long_one_is_done_long_before_it(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    relay = RelaySettings(host="127.0.0.1", port=smtp_server[1], rate_per_second=200)
    settings = settings_for(db_url, smtp_server[1], relays=[relay], batch_size=100)
    long = text_campaign(engine, settings, 20000, list_name="everyone")

    async def run() -> tuple[int, int]:
        worker = worker_for(settings, engine)
        task = asyncio.create_task(worker.run())
        try:
            await wait_until_async(
                lambda: sent(engine, long) >= 100,
                30,
                "the long send under way",
                alive=running(task),
            )
            short = text_campaign(engine, settings, 100, list_name="few")
            await wait_until_async(
                lambda: send_state(engine, short) == "completed",
                60,
                "the short send completed",
                alive=running(task),
            )
            return short, sent(engine, long)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    short, at_short_end = asyncio.run(run())
    # Oldest first, the short send's only batch waits for 19,900 of the long one's messages.
    # Shared out, it went with the long one's first few batches.
    assert sent(engine, short) == 100
    assert at_short_end < 2000, f"the long send had sent {at_short_end} meanwhile"
    assert send_state(engine, long) == "running"
