"""One exception for every refused SSO sign-in: a reason code for the audit log and words for people.

``reason`` is stable and machine-readable (``wrong_audience``, ``clock_skew``...); ``message``
is what an IT admin reads on the error page or the "test connection" result. Neither ever
carries a stack trace or the raw IdP payload.
"""

from __future__ import annotations


class SsoError(Exception):
    """A sign-in or configuration step failed for a reason a person can act on."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
