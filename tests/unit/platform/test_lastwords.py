"""Last words name the innermost frame of our code, what was raised and why."""

import pytest

from steadymail import lastwords
from steadymail.errors import ValidationError
from steadymail.rollout.flag_specs import validate
from steadymail.services.exits import systemd_reason
from steadymail.tracking.rewrite import RewriterCrash, crash_if_chosen


def test_last_words_name_the_file_and_the_exception() -> None:
    with pytest.raises(RewriterCrash) as caught:
        crash_if_chosen(80, 40)
    line = lastwords.describe(caught.value)
    assert line.startswith("tracking/rewrite.py:")
    assert "in crash_if_chosen raised RewriterCrash: link rewriter crashed on message 80" in line
    assert len(line) <= lastwords.MAX_REASON


def test_frames_are_ours_innermost_first_and_foreign_ones_are_left_out() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("fault.worker_exit", {"every": "soon"})
    chain = lastwords.frames(caught.value)
    assert chain[0].startswith("rollout/flag_specs.py:") and "_worker_exit" in chain[0]
    assert chain[1].startswith("rollout/flag_specs.py:") and "in validate" in chain[1]
    full = lastwords.full(caught.value)
    assert full.startswith("rollout/flag_specs.py:") and "(via rollout/flag_specs.py:" in full

    with pytest.raises(ValueError) as plain:
        raise ValueError("boom\nsecond line")
    # No frame of steadymail's: the reason alone, on one line.
    assert lastwords.full(plain.value) == "raised ValueError: boom second line"


def test_only_the_chosen_messages_crash() -> None:
    crash_if_chosen(81, 40)
    crash_if_chosen(80, 0)  # off


@pytest.mark.parametrize(
    ("result", "code", "status", "want"),
    [
        ("success", "exited", "0", None),
        ("exit-code", "exited", "70", "exit code 70 (systemd: exit-code)"),
        ("signal", "killed", "KILL", "signal SIGKILL (systemd: signal)"),
        ("oom-kill", "killed", "KILL", "signal SIGKILL (systemd: oom-kill)"),
        ("core-dump", "dumped", "SEGV", "signal SIGSEGV (core dumped) (systemd: core-dump)"),
        ("watchdog", "", "", "? (systemd: watchdog)"),
    ],
)
def test_systemd_reasons(result: str, code: str, status: str, want: str | None) -> None:
    assert systemd_reason(result, code, status) == want
