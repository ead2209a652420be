"""Structured logging: JSON lines by default, readable console lines on a TTY.

Request-scoped fields (request_id, tenant, trace_id) are bound with
`structlog.contextvars.bind_contextvars` and appear on every line of that request; a line
logged inside a span of a trace names it too (sllm/tracing.py).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from sllm.settings import LogSettings
from sllm.tracing import add_trace_ids

_SECRET_KEYS = frozenset({"api_key", "authorization", "password", "token"})


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A last line of defence: a secret passed by mistake never reaches a log line."""
    for key in _SECRET_KEYS.intersection(event_dict):
        event_dict[key] = "***"
    return event_dict


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the moment of writing, not at configuration:
    test runners and embedding applications swap it after start-up, and a logger bound
    to a replaced (then closed) stream would fail on every line."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> None:
    # PrintLogger only writes and flushes, which is all _CurrentStderr offers.
    out = stream if stream is not None else cast(TextIO, _CurrentStderr())
    use_console = settings.format == "console" or (
        settings.format == "auto" and hasattr(out, "isatty") and out.isatty()
    )
    renderer: Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through stdlib logging (grpc, httpx, openai) go to the same stream.
    logging.basicConfig(stream=out, level=max(level, logging.WARNING), force=True)
