"""Secret files (API keys, tracking secrets): owner-only from their first byte, never seen
half-written, in a data directory only its owner can enter."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if missing, and make it mode 0700: one that existed
    already (made by an earlier version, or by a tool that only wanted its parent) is narrowed
    too, if it is ours."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        path.chmod(0o700)
    return path


def write_secret(path: Path, text: str, *, replace: bool = False) -> bool:
    """Write `text` to `path` with mode 0600, atomically.

    The text goes whole into a new 0600 file under a temporary name in the same directory,
    which is then linked into place: link() fails if the name exists, so two processes starting
    together agree on one secret (False: the other one's is there), and no reader ever sees a
    partial file (an O_EXCL create of the final name left it empty for a moment: a worker once
    died reading it). With `replace`, the file is renamed over an existing one instead.
    """
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`, or a new one from `make()` written there (see `write_secret`)."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    if write_secret(path, value + "\n"):
        return value
    return path.read_text().strip()
