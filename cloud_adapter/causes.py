"""What failed underneath an error: the chain of its causes, and the connection failure
among them, whatever type the HTTP stack wrapped it in."""

from __future__ import annotations

import socket

import aiohttp


def causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, down the chain (a CloudError's `cause` first)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return chain


def connection_failure(error: BaseException) -> BaseException | None:
    """The connection failure behind an error, if any, that is no timeout: a refused or
    reset connection, a host that does not resolve, a server that hung up. The openai
    client's aiohttp transport reports those as connect timeouts (its exception map maps
    every aiohttp connection error to `httpx2.ConnectTimeout`), so the error's own type
    would call a refused connection a timeout."""
    for cause in causes(error):
        if isinstance(cause, TimeoutError):
            continue
        if isinstance(cause, ConnectionError | socket.gaierror | aiohttp.ClientConnectionError):
            return cause
    return None
