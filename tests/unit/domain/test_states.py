import pytest

from steadymail.domain.states import SendState, TransitionError, send_transition


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        (SendState.DRAFT, "start", SendState.RUNNING),
        (SendState.RUNNING, "pause", SendState.PAUSED),
        (SendState.PAUSED, "resume", SendState.RUNNING),
        (SendState.RUNNING, "cancel", SendState.CANCELLED),
        (SendState.PAUSED, "cancel", SendState.CANCELLED),
    ],
)
def test_allowed_transitions(state: SendState, action: str, target: SendState) -> None:
    assert send_transition(state, action) == target


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (SendState.COMPLETED, "pause"),
        (SendState.CANCELLED, "resume"),
        (SendState.RUNNING, "start"),
        (SendState.DRAFT, "pause"),
        (SendState.RUNNING, "explode"),
    ],
)
def test_refused_transitions(state: SendState, action: str) -> None:
    with pytest.raises(TransitionError):
        send_transition(state, action)
