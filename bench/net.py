"""What the benchmarks share: free ports and Postfix's smtp-sink (one copy, not one per bench)."""

import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int, backlog: int = 1024) -> subprocess.Popen[bytes]:
    """Postfix's smtp-sink on `port`, once it accepts connections (within 5 s)."""
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", str(backlog)])
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return sink
        except OSError:
            if time.monotonic() > deadline:
                sink.kill()
                raise RuntimeError("smtp-sink did not start") from None
            time.sleep(0.05)
