"""What every servicer shares when it reads a request: chat messages from the wire, and
the error that says which field to fix (each servicer turns it into INVALID_ARGUMENT);
and chat messages to the wire, for the client (sllm/client)."""

from __future__ import annotations

from collections.abc import Iterable

from sllm.chat import ChatMessage
from sllm.enums import ROLES
from sllm.v1 import common_pb2


class InvalidRequest(ValueError):
    """The request cannot be served as sent; the message says what to fix, `field` which
    field (its path, as `messages[2].content`; empty when the request as a whole is at
    fault), for clients that point at it without reading the message."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def messages_from_wire(messages: Iterable[common_pb2.ChatMessage]) -> list[ChatMessage]:
    """Plain chat messages; an unknown role is an InvalidRequest naming the message."""
    plain = []
    for index, message in enumerate(messages):
        role = ROLES.names.get(message.role)
        if role is None:
            raise InvalidRequest(
                f"messages[{index}].role is {message.role}: use ROLE_SYSTEM (1), "
                "ROLE_USER (2) or ROLE_ASSISTANT (3)",
                field=f"messages[{index}].role",
            )
        plain.append(ChatMessage(role, message.content))
    return plain


def messages_to_wire(messages: Iterable[ChatMessage]) -> list[common_pb2.ChatMessage]:
    return [common_pb2.ChatMessage(role=ROLES.numbers[m.role], content=m.content) for m in messages]
