"""Secret files: 0600 from the first byte whatever the umask, written whole, in 0700 directories;
the data directory private; database passwords never shown."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from steadymail.config import load_settings
from steadymail.secretfile import private_dir, read_or_create, write_secret
from steadymail.services.database import shown_url


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the worst case: nothing masked
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_written_0600_in_a_0700_directory(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "keys" / "secret"
    assert write_secret(path, "one\n")
    assert path.read_text() == "one\n" and mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert not write_secret(path, "two\n")  # someone else's secret is there: kept
    assert path.read_text() == "one\n"
    assert write_secret(path, "three\n", replace=True)
    assert path.read_text() == "three\n" and mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary file left


def test_read_or_create_makes_once(tmp_path: Path, open_umask: None) -> None:
    made: list[str] = []

    def make() -> str:
        made.append("x")
        return f"secret-{len(made)}"

    path = tmp_path / "control-api-key"
    assert read_or_create(path, make) == "secret-1"
    assert read_or_create(path, make) == "secret-1" and made == ["x"]
    assert mode(path) == 0o600


def test_the_data_directory_is_created_private(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEADYMAIL_CONFIG", str(tmp_path / "none.toml"))
    settings = load_settings(data_dir=tmp_path / "a" / "data")
    assert mode(settings.data_dir) == 0o700
    assert mode(private_dir(tmp_path / "b")) == 0o700


def test_database_passwords_are_masked() -> None:
    shown = shown_url("postgresql://steadymail:hunter2@db.internal:5432/steadymail")
    assert "hunter2" not in shown and shown.startswith("postgresql://steadymail:***@db.internal")
    assert shown_url("sqlite:///.steadymail/steadymail.db") == "sqlite:///.steadymail/steadymail.db"
    assert "hunter2" not in shown_url("postgresql+psycopg://u:hunter2@h/db?sslmode=require")
    assert shown_url("not a url at all hunter2") == "<database url>"
