"""The record rules alone: what counts as published, wrong or a warning."""

from steadymail.deliverability.records import (
    Algorithm,
    Key,
    Verdict,
    aligned,
    check_dkim,
    check_dmarc,
    check_mx,
    check_spf,
)

KEY = Key("s1", Algorithm.ED25519, "abc=")


def test_dkim_record_forms() -> None:
    assert check_dkim(KEY, ["v=DKIM1; k=ed25519; p=abc="]).verdict is Verdict.OK
    assert check_dkim(KEY, ["v=DKIM1;k=ed25519;p=ab c="]).verdict is Verdict.OK  # spaces folded
    assert check_dkim(KEY, []).verdict is Verdict.MISSING
    assert check_dkim(KEY, ["v=DKIM1; k=rsa; p=abc="]).verdict is Verdict.WRONG
    assert check_dkim(KEY, ["v=DKIM1; k=ed25519; p=xyz="]).verdict is Verdict.WRONG
    assert check_dkim(KEY, ["p=abc=; k=ed25519", "p=abc=; k=ed25519"]).verdict is Verdict.WRONG


def test_spf_dmarc_mx_and_alignment() -> None:
    assert check_spf("d.example", ["v=spf1 a mx ~all"], "a mx").verdict is Verdict.OK
    assert check_spf("d.example", ["v=spf1 -all"], "a mx").verdict is Verdict.WARNING
    assert check_spf("d.example", ["v=spf1 a", "v=spf1 mx"], "a").verdict is Verdict.WRONG
    assert check_spf("d.example", ["google-site-verification=x"], "a").verdict is Verdict.MISSING
    # The policy's case does not matter (p=Reject is a policy).
    dmarc = check_dmarc("d.example", ["v=DMARC1; p=Reject"], "d.example")
    assert [f.verdict for f in dmarc] == [Verdict.OK, Verdict.OK]
    assert check_mx("b.d.example", ["MX.D.example."], "mx.d.example.").verdict is Verdict.OK
    assert check_mx("b.d.example", ["other.example."], "mx.d.example").verdict is Verdict.WRONG
    assert aligned("example.com", "bounces.example.com")
    assert aligned("news.example.com", "example.com")
    assert not aligned("example.com", "badexample.com")
