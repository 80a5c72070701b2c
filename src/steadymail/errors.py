"""The one exception hierarchy; the API maps these to HTTP codes, the CLI prints them."""


class SteadymailError(Exception):
    """Base of every error steadymail raises on purpose."""


class ValidationError(SteadymailError):
    """Input that can never be accepted as given (bad template, bad address, header injection)."""


class NotFound(SteadymailError):
    """A named object does not exist."""


class Conflict(SteadymailError):
    """The request clashes with the current state (e.g. resuming a cancelled send)."""


class Unauthorized(SteadymailError):
    """Missing, malformed, unknown or revoked credentials."""


class Forbidden(SteadymailError):
    """Valid credentials that lack the scope the action needs."""


class TooLarge(SteadymailError):
    """A request or upload past a configured size limit."""
