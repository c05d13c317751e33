"""Request bodies: read within the size and time limits, then taken apart.

An image arrives as a multipart/form-data field ``image`` (``curl -F image=@cat.jpg``)
or as the whole body with an ``image/*`` content type (``--data-binary``). JSON bodies
go through edge_contracts/json_limits.py (size and nesting depth checked first).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import BodyPartReader, web

from edge_contracts.json_limits import MAX_JSON_DEPTH, loads_limited
from edge_server.errors import InvalidInput
from edge_server.http.errors import HttpRefusal

BODY_TIMEOUT_S = 10.0
IMAGE_FIELD = "image"
# V2 "data" may nest one level per tensor dimension, inside the request's own objects.
JSON_DEPTH = MAX_JSON_DEPTH + 8


def _too_large(size: int, limit: int) -> HttpRefusal:
    return HttpRefusal(
        413,
        "RESOURCE_EXHAUSTED",
        f"the request body is {size} bytes, over the limit of {limit} bytes (--max-message-bytes)",
    )


def check_declared_size(request: web.BaseRequest) -> None:
    """Refuse a body that announces itself too large before reading a byte of it."""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        raise _too_large(declared, request.client_max_size)


async def read_body(request: web.BaseRequest) -> bytes:
    """The whole body, within ``client_max_size`` and ``BODY_TIMEOUT_S``."""
    check_declared_size(request)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:  # a chunked body that turned out too large
        raise HttpRefusal(
            413,
            "RESOURCE_EXHAUSTED",
            f"the request body is over the limit of {request.client_max_size} bytes "
            "(--max-message-bytes)",
        ) from None
    except TimeoutError:
        raise _too_slow() from None


def _too_slow() -> HttpRefusal:
    return HttpRefusal(
        408, "DEADLINE_EXCEEDED", f"the request body did not arrive within {BODY_TIMEOUT_S:g} s"
    )


async def read_json(request: web.BaseRequest, what: str) -> Any:
    body = await read_body(request)
    return loads_limited(body, what, InvalidInput, request.client_max_size, JSON_DEPTH)


async def read_image(request: web.BaseRequest) -> bytes:
    """The encoded image of a simple prediction request."""
    ctype = request.content_type
    if ctype.startswith("image/"):
        image = await read_body(request)
    elif ctype == "multipart/form-data":
        image = await _image_field(request)
    else:
        raise HttpRefusal(
            415,
            "INVALID_ARGUMENT",
            f"Content-Type {ctype!r} is not accepted: send multipart/form-data with an "
            f"'{IMAGE_FIELD}' file field (curl -F image=@photo.jpg) or the image itself as "
            "the body with Content-Type image/jpeg, image/png...",
        )
    if not image:
        raise InvalidInput("the image is empty (0 bytes)", IMAGE_FIELD)
    return image


async def _image_field(request: web.BaseRequest) -> bytes:
    # A multipart body must say its length: it is then bounded before any part is read.
    if request.content_length is None:
        raise HttpRefusal(411, "INVALID_ARGUMENT", "a multipart body needs a Content-Length header")
    check_declared_size(request)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == IMAGE_FIELD:
                    return bytes(await part.read(decode=False))
                await part.release()
    except TimeoutError:
        raise _too_slow() from None
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise InvalidInput(f"the multipart body is malformed: {exc}", IMAGE_FIELD) from None
    raise InvalidInput(
        f"the multipart body has no '{IMAGE_FIELD}' field: send the image as "
        f"-F {IMAGE_FIELD}=@photo.jpg",
        IMAGE_FIELD,
    )
