"""The DNS records a sending domain publishes, and what a lookup of them says.

Pure: record values in, findings out. The lookups themselves are `dns_lookup.py`'s; keys are
made in `keys.py`. What receivers check (Gmail's and Yahoo's bulk-sender rules, 2024):
- DKIM (RFC 6376): a TXT record at ``<selector>._domainkey.<domain>`` with the public key;
- SPF (RFC 7208): exactly one ``v=spf1`` TXT record at the return-path (envelope) domain;
- DMARC (RFC 7489): a ``v=DMARC1`` TXT record with a policy at ``_dmarc.<domain>``, and the
  From domain aligned with the DKIM ``d=`` or the return-path domain (relaxed: the same
  domain or one a subdomain of the other);
- the return-path domain's MX reaching the bounce processor, when it is a domain of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from steadymail.errors import ValidationError


class Algorithm(StrEnum):
    RSA = "rsa-sha256"
    ED25519 = "ed25519-sha256"

    @property
    def k(self) -> str:
        """The ``k=`` tag of the key's DNS record."""
        return "rsa" if self is Algorithm.RSA else "ed25519"


@dataclass(frozen=True)
class Key:
    """A DKIM key of a domain as the records need it: selector, algorithm, public key."""

    selector: str
    algorithm: Algorithm
    public: str  # base64, the p= value


@dataclass(frozen=True)
class Record:
    name: str
    type: str  # TXT or MX
    value: str
    why: str


class Verdict(StrEnum):
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    record: str  # what was checked, e.g. "DKIM s1" or "SPF bounces.example.com"
    verdict: Verdict
    detail: str


def check_domain_name(name: str) -> str:
    """The domain in lower case, A-labels for an IDN; ValidationError for anything else."""
    text = name.strip().rstrip(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise ValidationError(f"not a domain name: {name!r}") from e
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or any(not label or len(label) > 63 for label in labels)
        or any(label.startswith("-") or label.endswith("-") for label in labels)
        or not all(c.isalnum() or c in "-." for c in ascii_name)
    ):
        raise ValidationError(f"not a domain name: {name!r}")
    return ascii_name


def dkim_value(key: Key) -> str:
    return f"v=DKIM1; k={key.algorithm.k}; p={key.public}"


def aligned(from_domain: str, other: str) -> bool:
    """DMARC's relaxed alignment, approximated without the public suffix list: the same domain,
    or one of them a subdomain of the other."""
    a, b = from_domain.lower(), other.lower()
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def records_for(
    domain: str,
    keys: Sequence[Key],
    return_path_domain: str,
    spf_mechanisms: str,
    bounce_mx: str,
) -> list[Record]:
    """Every record to publish for ``domain``: a DKIM key per selector, SPF at the return-path
    domain, DMARC, and an MX for a return-path domain of its own (where bounces must arrive)."""
    out = [
        Record(f"{k.selector}._domainkey.{domain}", "TXT", dkim_value(k), f"DKIM {k.algorithm}")
        for k in keys
    ]
    out.append(
        Record(
            return_path_domain,
            "TXT",
            f"v=spf1 {spf_mechanisms} ~all".replace("  ", " "),
            "SPF for the return path (the envelope sender receivers check)",
        )
    )
    out.append(
        Record(
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}; adkim=r; aspf=r",
            "DMARC: start at p=none, read the reports, then move to quarantine or reject",
        )
    )
    if return_path_domain != domain and bounce_mx:
        out.append(
            Record(return_path_domain, "MX", f"10 {bounce_mx}.", "bounces reach the inbound server")
        )
    return out


def _tags(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip().lower()] = "".join(value.split())
    return out


def check_dkim(key: Key, found: Sequence[str]) -> Finding:
    """Whether the TXT strings found at the key's name publish exactly this key."""
    label = f"DKIM {key.selector} ({key.algorithm.k})"
    records = [t for t in found if "p=" in t or t.lower().startswith("v=dkim1")]
    if not records:
        return Finding(label, Verdict.MISSING, "no DKIM record")
    if len(records) > 1:
        return Finding(label, Verdict.WRONG, f"{len(records)} DKIM records; publish one")
    tags = _tags(records[0])
    if tags.get("v", "DKIM1").upper() != "DKIM1":
        return Finding(label, Verdict.WRONG, f"v={tags['v']}, not DKIM1")
    if tags.get("k", "rsa").lower() != key.algorithm.k:
        return Finding(label, Verdict.WRONG, f"k={tags.get('k', 'rsa')}, not {key.algorithm.k}")
    if tags.get("p") != key.public:
        return Finding(label, Verdict.WRONG, "the published public key is not this key's")
    return Finding(label, Verdict.OK, "published")


def check_spf(return_path_domain: str, found: Sequence[str], spf_mechanisms: str) -> Finding:
    label = f"SPF {return_path_domain}"
    spf = [t for t in found if t.lower().split(" ", 1)[0] == "v=spf1"]
    if not spf:
        return Finding(label, Verdict.MISSING, "no v=spf1 record")
    if len(spf) > 1:
        # RFC 7208 4.5: more than one is a permanent error, as bad as none.
        return Finding(label, Verdict.WRONG, f"{len(spf)} v=spf1 records; merge them into one")
    terms = spf[0].lower().split()[1:]
    absent = [m for m in spf_mechanisms.lower().split() if m not in terms]
    if absent:
        return Finding(
            label, Verdict.WARNING, f"{spf[0]!r} lacks {' '.join(absent)}: is the sender covered?"
        )
    return Finding(label, Verdict.OK, spf[0])


def check_dmarc(domain: str, found: Sequence[str], return_path_domain: str) -> list[Finding]:
    label = f"DMARC _dmarc.{domain}"
    dmarc = [t for t in found if t.replace(" ", "").lower().startswith("v=dmarc1")]
    out: list[Finding] = []
    if not dmarc:
        out.append(Finding(label, Verdict.MISSING, "no v=DMARC1 record"))
    elif len(dmarc) > 1:
        out.append(Finding(label, Verdict.WRONG, f"{len(dmarc)} DMARC records; publish one"))
    else:
        policy = _tags(dmarc[0]).get("p", "").lower()
        if policy not in ("none", "quarantine", "reject"):
            out.append(Finding(label, Verdict.WRONG, f"p={policy or '(absent)'}: not a policy"))
        else:
            out.append(Finding(label, Verdict.OK, f"p={policy}"))
    # Our DKIM signs with d=<domain>: aligned with the From by construction.
    if aligned(domain, return_path_domain):
        out.append(
            Finding("alignment", Verdict.OK, f"DKIM d={domain} and SPF {return_path_domain}")
        )
    else:
        out.append(
            Finding(
                "alignment",
                Verdict.WARNING,
                f"the return path {return_path_domain} is not aligned with {domain}: DMARC can "
                "pass through DKIM only",
            )
        )
    return out


def check_mx(return_path_domain: str, found: Sequence[str], bounce_mx: str) -> Finding:
    label = f"MX {return_path_domain}"
    hosts = [h.rstrip(".").lower() for h in found]
    bounce_mx = bounce_mx.rstrip(".").lower()
    if not hosts and not bounce_mx:
        # Nothing to compare with: the operator has not said where bounces should arrive.
        return Finding(label, Verdict.WARNING, "no MX, and no bounce_mx set: bounces get lost")
    if not hosts:
        return Finding(label, Verdict.MISSING, "no MX: bounces to the return path get lost")
    if bounce_mx and bounce_mx not in hosts:
        return Finding(label, Verdict.WRONG, f"MX {', '.join(hosts)}, not {bounce_mx}")
    return Finding(label, Verdict.OK, ", ".join(hosts))


def verified(findings: Sequence[Finding]) -> bool:
    """True when nothing is missing or wrong (warnings do not hold a domain back)."""
    return all(f.verdict in (Verdict.OK, Verdict.WARNING) for f in findings)


def summarise(findings: Sequence[Finding]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.verdict.value] = counts.get(f.verdict.value, 0) + 1
    return counts
