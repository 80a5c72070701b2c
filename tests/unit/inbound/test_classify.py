"""Inbound reports classified on a corpus of real-world and current shapes (see
tests/data/bounces/README.md): hard and soft bounces with the recipients they name, complaints
with the original message's return path, auto-replies never taken for bounces, and malformed
input never raising."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steadymail.inbound.classify import Kind, classify

DATA = Path(__file__).parents[2] / "data" / "bounces"
FLUFL = json.loads((DATA / "flufl" / "manifest.json").read_text())
SHAPES = json.loads((DATA / "shapes" / "labels.json").read_text())
# Read by hand (README): flufl.bounce's table has them as "nothing found" by one detector.
RELABELLED = {
    "qmail_08.txt": (Kind.AUTOREPLY, []),
    "simple_42.txt": (Kind.HARD_BOUNCE, ["david...@gmail.com"]),
}


def expected(name: str) -> tuple[Kind, list[str]]:
    if name in RELABELLED:
        return RELABELLED[name]
    label = FLUFL[name]
    if not label["addresses"]:
        return Kind.UNKNOWN, []
    return (Kind.SOFT_BOUNCE if label["temporary"] else Kind.HARD_BOUNCE), label["addresses"]


@pytest.mark.parametrize("name", sorted(FLUFL))
def test_real_world_bounces(name: str) -> None:
    kind, addresses = expected(name)
    report = classify((DATA / "flufl" / name).read_bytes())
    assert report.kind == kind, (report.how, report.notes)
    assert set(addresses) <= set(report.recipients), report.recipients


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_current_shapes(name: str) -> None:
    label = SHAPES[name]
    report = classify((DATA / "shapes" / name).read_bytes())
    assert report.kind == Kind(label["kind"]), (report.how, report.notes)
    assert set(label.get("recipients", [])) <= set(report.recipients)
    for attr in ("status", "original_return_path", "original_message_id"):
        if attr in label:
            assert getattr(report, attr) == label[attr]


def test_the_corpus_covers_every_kind() -> None:
    kinds = [expected(n)[0] for n in FLUFL] + [Kind(v["kind"]) for v in SHAPES.values()]
    assert {k: kinds.count(k) for k in Kind} == {
        Kind.HARD_BOUNCE: 106,
        Kind.SOFT_BOUNCE: 13,
        Kind.COMPLAINT: 3,
        Kind.AUTOREPLY: 4,
        Kind.UNKNOWN: 8,
    }


def test_a_dsn_says_what_the_server_said() -> None:
    report = classify((DATA / "shapes" / "postfix_user_unknown.eml").read_bytes())
    assert "User unknown in virtual mailbox table" in report.diagnostic
    assert report.how == "dsn"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_any_bytes_are_classified_never_raised(raw: bytes) -> None:
    assert classify(raw).kind in set(Kind)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.integers(0, 5000), st.binary(max_size=50))
def test_a_damaged_real_report_never_raises(name: str, cut: int, junk: bytes) -> None:
    raw = (DATA / "shapes" / name).read_bytes()
    assert classify(raw[:cut] + junk + raw[cut + len(junk) :]).kind in set(Kind)
