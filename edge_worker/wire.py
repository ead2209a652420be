"""Request parsing that turns undecodable bytes into a message a caller can act on.

Python protobuf refuses a string field holding invalid UTF-8 at parse time, and gRPC then
answers with an opaque error. Here the request deserializer keeps the failure instead, and
re-reads the bytes with a mirror of the schema in which every string is `bytes`, to name
the field that is not UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TypeVar, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a request deserializer returns for bytes that are not a valid message."""

    reason: str
    # The field at fault (its path), or "" when the bytes are no message at all.
    field: str = ""


def _string_to_bytes(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    for nested in message.nested_type:
        _string_to_bytes(nested)


def _add_mirrored(pool: descriptor_pool.DescriptorPool, file: FileDescriptor) -> None:
    for dependency in file.dependencies:
        _add_mirrored(pool, dependency)
    try:
        pool.FindFileByName(file.name)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    for message in proto.message_type:
        _string_to_bytes(message)
    pool.Add(proto)


@cache
def _bytes_mirror(descriptor: Descriptor) -> type[Message]:
    pool = descriptor_pool.DescriptorPool()
    _add_mirrored(pool, descriptor.file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(descriptor.full_name))


def _bad_utf8_fields(
    original: Descriptor, mirrored: Message, path: str = ""
) -> Iterator[tuple[str, UnicodeDecodeError]]:
    for field, value in mirrored.ListFields():
        name = f"{path}{field.name}"
        source = original.fields_by_name[field.name]
        values = value if field.is_repeated else [value]
        for index, item in enumerate(values):
            where = f"{name}[{index}]" if field.is_repeated else name
            if source.type == FieldDescriptor.TYPE_STRING:
                try:
                    item.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield where, error
            elif source.message_type is not None and isinstance(item, Message):
                yield from _bad_utf8_fields(source.message_type, item, f"{where}.")


def explain_decode_failure(message_type: type[Message], data: bytes) -> Undecodable:
    """Why `data` is not a valid `message_type`, naming the field when it is the UTF-8 rule."""
    descriptor = cast(Descriptor, message_type.DESCRIPTOR)
    try:
        mirrored = _bytes_mirror(descriptor).FromString(data)
    except DecodeError:
        return Undecodable(
            f"the request is not a valid {descriptor.full_name} message (malformed bytes)"
        )
    for where, error in _bad_utf8_fields(descriptor, mirrored):
        return Undecodable(
            f"{where} is not valid UTF-8 ({error.reason} at byte {error.start}): "
            "send text encoded as UTF-8",
            where,
        )
    return Undecodable(f"the request is not a valid {descriptor.full_name} message")


def lenient_deserializer(message_type: type[M]) -> Callable[[bytes], M | Undecodable]:
    def deserialize(data: bytes) -> M | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return explain_decode_failure(message_type, data)

    return deserialize
