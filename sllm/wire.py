"""What every servicer shares when it reads a request: chat messages from the wire, and
the error that says which field to fix (each servicer turns it into INVALID_ARGUMENT)."""

from __future__ import annotations

from collections.abc import Iterable

from sllm.chat import ChatMessage, Role
from sllm.v1 import common_pb2

_ROLES: dict[int, Role] = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
}


class InvalidRequest(ValueError):
    """The request cannot be served as sent; the message says what to fix."""


def messages_from_wire(messages: Iterable[common_pb2.ChatMessage]) -> list[ChatMessage]:
    """Plain chat messages; an unknown role is an InvalidRequest naming the message."""
    plain = []
    for index, message in enumerate(messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise InvalidRequest(
                f"messages[{index}].role is {message.role}: use ROLE_SYSTEM (1), "
                "ROLE_USER (2) or ROLE_ASSISTANT (3)"
            )
        plain.append(ChatMessage(role, message.content))
    return plain
