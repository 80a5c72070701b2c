"""Header safety: the rules that make header injection impossible, checked at the door."""

import re
from collections.abc import Collection, Mapping


class HeaderInjection(ValueError):
    """A header value carried a line break."""


class BadHeader(ValueError):
    """A custom header a caller may not set: bad name, control characters, or reserved."""


# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# Control characters other than HTAB (RFC 5322 unstructured text allows WSP); DEL included.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 5322 §2.1.1: a line is at most 998 characters; a name must fit on one with its colon.
MAX_NAME_CHARS = 76
MAX_VALUE_CHARS = 2000
MAX_CUSTOM_HEADERS = 50

# Headers the pipeline writes itself (or that belong to relays and receivers); a caller may not
# set or duplicate them.
RESERVED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "content-description",
        "content-language",
        "return-path",
        "received",
        "dkim-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
        "delivered-to",
        "x-original-to",
    }
)
# Set by the platform when the message carries its own unsubscribe link (campaigns, and
# transactional messages with `list_unsubscribe`); a second copy would confuse receivers.
LIST_UNSUBSCRIBE = frozenset({"list-unsubscribe", "list-unsubscribe-post"})


def check_header_value(name: str, value: str) -> str:
    """Return `value` unchanged, or raise if it could start a new header line."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise HeaderInjection(f"header {name} contains a line break or NUL")
    return value


def check_custom_headers(headers: Mapping[str, str], *, list_unsubscribe: bool = False) -> None:
    """Raise BadHeader naming the first header a caller may not send as given.

    ``list_unsubscribe``: the platform adds its own List-Unsubscribe headers to this message.
    """
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise BadHeader(f"at most {MAX_CUSTOM_HEADERS} custom headers")
    seen: set[str] = set()
    for name, value in headers.items():
        shown = repr(name[:MAX_NAME_CHARS])
        if not _FIELD_NAME.fullmatch(name) or len(name) > MAX_NAME_CHARS:
            raise BadHeader(
                f"header name {shown} is not a valid field name (printable ASCII without"
                f" ':' or spaces, at most {MAX_NAME_CHARS} characters)"
            )
        key = name.lower()
        if key in RESERVED:
            raise BadHeader(f"header {name} is set by steadymail and may not be given")
        if list_unsubscribe and key in LIST_UNSUBSCRIBE:
            raise BadHeader(f"header {name} is set by steadymail when list_unsubscribe is on")
        if key in seen:
            raise BadHeader(f"header {name} is given twice (names are case-insensitive)")
        seen.add(key)
        if not isinstance(value, str):
            raise BadHeader(f"header {name} must be a string")
        if _CONTROL.search(value):
            raise BadHeader(f"header {name} contains a line break or control character")
        if len(value) > MAX_VALUE_CHARS:
            raise BadHeader(f"header {name} is longer than {MAX_VALUE_CHARS} characters")


def policy_headers(
    kind: str, send_id: int, list_id: int | None, domain: str, present: Collection[str] = ()
) -> dict[str, str]:
    """The headers receivers' filters look for on bulk and automatic mail, for a message of a
    send of ``kind`` ("campaign", or "stream": transactional); ``domain`` is the platform's own (its
    Message-ID domain). A header named in ``present`` (case-insensitive: the caller's own, on
    transactional mail) is left to the caller.

    - ``List-Id`` (RFC 2919) on campaigns: the list, as ``<list-<id>.<domain>>``;
    - ``Precedence: bulk`` on campaigns, ``Auto-Submitted: auto-generated`` (RFC 3834) on both:
      vacation responders and auto-repliers stay quiet;
    - ``Feedback-ID`` (the Gmail feedback loop's ``a:b:c:SenderId``): send, list and kind, so
      complaints can be traced to the send they came from.
    """
    out = {"Auto-Submitted": "auto-generated"}
    if kind == "campaign":
        out["Precedence"] = "bulk"
        if list_id is not None:
            out["List-Id"] = f"<list-{list_id}.{domain}>"
    out["Feedback-ID"] = f"{send_id}:{list_id or 0}:{kind}:{domain}"
    taken = {name.lower() for name in present}
    return {name: value for name, value in out.items() if name.lower() not in taken}
