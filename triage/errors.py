"""The ways a triage run can fail. Each type says what the caller should do about it.

The triggers and the CLI catch these in one place and map them to an HTTP status, a
queue decision or an exit code; nothing else in the package catches broadly.
"""


class TriageError(Exception):
    """Base class: a failure with a message fit to show an analyst or an on-call."""


class BadInput(TriageError):
    """The request itself is wrong (malformed JSON, unusable incident, hostile host name).

    Retrying cannot help: HTTP 400, queue message completed, CLI exit 2.
    """


class ConfigurationError(TriageError):
    """A setting is missing or malformed. Retrying cannot help until someone fixes it."""


class DataError(TriageError):
    """An exported data folder or file cannot be read or is not recognised (CLI exit 2)."""


class AuthenticationError(TriageError):
    """No token could be had, or the token was refused. Never reported as 'no connections'."""


class UpstreamError(TriageError):
    """Log Analytics or Sentinel refused the request for good (400/403/404 ...)."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class TransientError(TriageError):
    """Throttling, timeouts, 5xx: the same request may succeed later (HTTP 503, queue retry)."""
