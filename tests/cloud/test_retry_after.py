"""Reading Retry-After in its three spellings (seconds, HTTP date, retry-after-ms)."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx2
import openai
import pytest

from cloud_adapter.retrying import retry_after_s


def _rate_limited(**headers: str) -> openai.RateLimitError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers=headers, request=request)
    return openai.RateLimitError("rate limited", response=response, body=None)


def test_seconds() -> None:
    assert retry_after_s(_rate_limited(**{"retry-after": "2.5"})) == 2.5


def test_milliseconds_win_over_seconds() -> None:
    error = _rate_limited(**{"retry-after": "2", "retry-after-ms": "150"})
    assert retry_after_s(error) == pytest.approx(0.15)


def test_http_date() -> None:
    error = _rate_limited(**{"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert retry_after_s(error) == pytest.approx(30, abs=1.5)


def test_a_date_in_the_past_means_now() -> None:
    error = _rate_limited(**{"retry-after": formatdate(time.time() - 30, usegmt=True)})
    assert retry_after_s(error) == 0.0


def test_absent_or_unreadable() -> None:
    assert retry_after_s(_rate_limited()) is None
    assert retry_after_s(_rate_limited(**{"retry-after": "soon"})) is None
    assert retry_after_s(ConnectionResetError()) is None
