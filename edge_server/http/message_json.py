"""Protobuf messages as JSON bodies: proto field names, and 64-bit integers as numbers.

``json_format`` follows the proto3 JSON mapping, which writes int64/uint64 as strings
(JavaScript numbers lose precision above 2**53). The values the gateway sends in such
fields (class ids, microsecond timings, tensor dimensions) are far below that, and a
person reading ``curl`` output expects ``"class_id": 5``; so they are turned back into
numbers, field by field, from the message's descriptor.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_WIDE = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def message_json(message: Message) -> dict[str, Any]:
    """``message`` as a JSON object, every field present (defaults included)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    _numbers(message.DESCRIPTOR, data)
    return data


def _numbers(descriptor: Any, data: dict[str, Any]) -> None:
    for field in descriptor.fields:
        value = data.get(field.name)
        if value is None:
            continue
        if field.type in _WIDE:
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    _numbers(field.message_type, item)
