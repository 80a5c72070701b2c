"""A webhook receiver for bench/webhooks.py: counts the events of every accepted request and
checks every signature; `POST /down?seconds=S` makes it answer 503 for S seconds.

Run: python bench/webhook_receiver.py PORT SECRET
"""

import json
import sys
import time
from typing import Any

import uvicorn

from steadymail.domain.webhooks import verify

SECRET = sys.argv[2] if len(sys.argv) > 2 else ""
state: dict[str, Any] = {"events": 0, "ids": set(), "requests": 0, "refused": 0, "bad": 0}
down_until = [0.0]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    path, status, out = scope["path"], 204, b""
    if path == "/count":
        status = 200
        out = json.dumps(
            {k: len(v) if isinstance(v, set) else v for k, v in state.items()}
        ).encode()
    elif path == "/down":
        seconds = float(scope["query_string"].decode().split("=", 1)[1])
        down_until[0] = time.time() + seconds
    elif time.time() < down_until[0]:
        state["refused"] += 1
        status = 503
    else:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        state["requests"] += 1
        if not verify(SECRET, headers, body, time.time()):
            state["bad"] += 1
            status = 401
        else:
            events = json.loads(body)["data"]["events"]
            state["events"] += len(events)
            state["ids"].update(e["id"] for e in events)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(out)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": out})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop")
