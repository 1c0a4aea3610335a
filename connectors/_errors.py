"""Platform failures: what went wrong talking to Label Studio, without secrets or task data."""

from __future__ import annotations

from galton.quality import GaltonError

__all__ = ["PlatformError"]


class PlatformError(GaltonError):
    """Label Studio refused a request or could not be reached.

    Attributes
    ----------
    project_id : int or None
        The project the call was about, when there was one.
    status : int or None
        The HTTP status code, or None when no answer came (timeout, refused connection).
    retryable : bool
        True for failures that may pass on a later try (5xx, 429, timeouts, dropped
        connections), after this client's own retries ran out; False for 4xx.
    """

    def __init__(self, message: str, *, project_id: int | None = None, status: int | None = None,
                 retryable: bool = False) -> None:
        where = f"Label Studio project {project_id}: " if project_id is not None else "Label Studio: "
        super().__init__(where + message)
        self.project_id = project_id
        self.status = status
        self.retryable = retryable
