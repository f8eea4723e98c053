"""Errors the user can act on. Each carries its exit code; cli.py prints `error: <message>`.

Messages name the cause and the fix (the flag to use), and never contain Secret values.
"""

OK = 0
UNEXPECTED = 1
USAGE = 2
REFUSED = 3
NOT_FOUND = 4
CONFLICT = 5
CLUSTER = 6
TEMPLATE = 7
FAILED = 10
TIMED_OUT = 11
CANCELLED = 12
NOT_VERIFIED = 13  # `verify`: a fact about a finished move does not hold
INTERRUPTED = 130


class DlmError(Exception):
    exit_code = UNEXPECTED

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(DlmError):
    """A flag or input the user gave cannot be used."""

    exit_code = USAGE


class Refused(DlmError):
    """DLM cannot migrate this VM as it is (not running, unsupported disk, ...)."""

    exit_code = REFUSED


class NotFound(DlmError):
    exit_code = NOT_FOUND


class Conflict(DlmError):
    """A name is already taken (on the target, or an output directory)."""

    exit_code = CONFLICT


class ClusterError(DlmError):
    """A cluster could not be reached, or refused the request (403)."""

    exit_code = CLUSTER


class Forbidden(ClusterError):
    """The cluster refused the request (403): RBAC does not grant it."""


class TemplateError(DlmError):
    exit_code = TEMPLATE
