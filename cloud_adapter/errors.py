"""The few typed errors a cloud call ends with; each names the endpoint and the cause."""

from __future__ import annotations


class CloudError(Exception):
    """A cloud call failed. `cause` is the underlying exception, if any."""

    def __init__(self, message: str, *, endpoint: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{message} ({endpoint})")
        self.endpoint = endpoint
        self.cause = cause


class CloudUnavailable(CloudError):
    """Nothing answered (connection refused or reset, timeout, 5xx), or the breaker is open."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        cause: BaseException | None = None,
        breaker_open: bool = False,
    ) -> None:
        super().__init__(message, endpoint=endpoint, cause=cause)
        self.breaker_open = breaker_open


class CloudRateLimited(CloudError):
    """429 still after the retries that fit the deadline."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        cause: BaseException | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, cause=cause)
        # What the endpoint asked for in Retry-After, when it said.
        self.retry_after_s = retry_after_s


class CloudDeadlineExceeded(CloudError):
    """The deadline passed, or too little of it was left to start the call."""


class CloudBadRequest(CloudError):
    """The endpoint rejected the request (4xx other than 401/403/429): retrying cannot help."""


class CloudModelNotFound(CloudBadRequest):
    """The endpoint does not serve the model asked for."""


class CloudAuthError(CloudError):
    """The endpoint rejected the API key (401) or its permissions (403)."""


class CloudStreamBroken(CloudError):
    """The stream broke after its first token; `partial_text` is what arrived before.

    Not retried from scratch: the caller has already seen the partial text and decides."""

    def __init__(
        self, message: str, *, endpoint: str, cause: BaseException | None, partial_text: str
    ) -> None:
        super().__init__(message, endpoint=endpoint, cause=cause)
        self.partial_text = partial_text
