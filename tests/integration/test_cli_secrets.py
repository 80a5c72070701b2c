"""The CLI never prints a database password."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from steadymail.cli.main import app as cli
from tests.conftest import create_pg_database, drop_pg_database, need_pg


def test_migrate_masks_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_pg()
    url = create_pg_database()
    try:
        # The local server trusts loopback, so any password connects: it is only to be hidden.
        with_password = url.replace("://postgres@", "://postgres:hunter2-s3cret@", 1)
        assert "hunter2-s3cret" in with_password
        monkeypatch.setenv("STEADYMAIL_DATABASE_URL", with_password)
        monkeypatch.setenv("STEADYMAIL_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("STEADYMAIL_CONFIG", str(tmp_path / "none.toml"))
        r = CliRunner().invoke(cli, ["migrate"])
        assert r.exit_code == 0, r.output
        assert "hunter2-s3cret" not in r.output and "postgres:***@" in r.output
    finally:
        drop_pg_database(url)
