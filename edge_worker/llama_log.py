"""llama.cpp's own log lines, through structlog: with a JSON log, every line a process
writes is JSON, llama.cpp's included.

llama.cpp writes its lines in pieces (a line may come in several calls, the later ones
marked "continued"); they are joined and logged one whole line at a time. Its chatter
(model metadata, buffer sizes) is logged at debug level; its warnings and errors at theirs.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

import llama_cpp
import structlog

log = structlog.get_logger("llama_cpp")

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the line).
_WARN, _ERROR, _CONT = 3, 4, 5


class LineJoiner:
    """Joins llama.cpp's log pieces into lines, each with the level of its first piece."""

    def __init__(self) -> None:
        self._pending = ""
        self._level = 0

    def feed(self, level: int, text: str) -> list[tuple[int, str]]:
        """The lines that `text` completes, without their newline."""
        if not self._pending and level != _CONT:
            self._level = level
        *lines, self._pending = (self._pending + text).split("\n")
        return [(self._level, line) for line in lines if line.strip()]


def emit(level: int, line: str) -> None:
    if level == _ERROR:
        log.error("llama_cpp.log", text=line)
    elif level == _WARN:
        log.warning("llama_cpp.log", text=line)
    else:
        log.debug("llama_cpp.log", text=line)


_joiner = LineJoiner()
_lock = threading.Lock()
_installed = False


def _on_log(level: int, text: bytes | None, _: ctypes.c_void_p) -> None:
    # An exception cannot cross into C: ctypes would print its traceback on stderr,
    # the one non-JSON line this module exists to prevent.
    with contextlib.suppress(Exception):
        with _lock:
            lines = _joiner.feed(level, (text or b"").decode(errors="replace"))
        for line_level, line in lines:
            emit(line_level, line)


# Module level: llama.cpp keeps the pointer for as long as the process lives.
_callback = llama_cpp.llama_log_callback(_on_log)


def route_llama_logs() -> None:
    """Sends llama.cpp's log to structlog from now on (once per process; replaces
    llama-cpp-python's own handler, which prints to stderr)."""
    global _installed
    with _lock:
        if not _installed:
            llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
            _installed = True
