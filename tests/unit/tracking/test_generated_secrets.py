"""Processes of a region starting together agree on one generated tracking key, and none of
them ever reads a half-written secrets file (a worker once died of that)."""

import multiprocessing as mp
from pathlib import Path

from steadymail.tracking.keys import _generated


def _read(path: str, out: "mp.Queue[str]") -> None:
    out.put(_generated(Path(path))["secret"])


def test_concurrent_first_starts_share_one_key(tmp_path: Path) -> None:
    for trial in range(10):
        path = str(tmp_path / f"s{trial}.json")
        out: mp.Queue[str] = mp.Queue()
        procs = [mp.Process(target=_read, args=(path, out)) for _ in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0] * 5
        assert len({out.get() for _ in procs}) == 1
        assert (Path(path).stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{i}.json" for i in range(10)]
