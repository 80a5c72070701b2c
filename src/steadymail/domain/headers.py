"""Header safety: the one rule that makes header injection impossible."""


class HeaderInjection(ValueError):
    """A header value carried a line break."""


def check_header_value(name: str, value: str) -> str:
    """Return `value` unchanged, or raise if it could start a new header line."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise HeaderInjection(f"header {name} contains a line break or NUL")
    return value
