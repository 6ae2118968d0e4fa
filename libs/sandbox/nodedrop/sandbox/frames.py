"""The pipe format between ProcessSandbox and its runners: one frame per
message, ``>II`` (header length, body length), the JSON header, the body."""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ["PREFIX", "encode_frame", "read_frame", "write_frame"]

PREFIX = struct.Struct(">II")


def encode_frame(header: bytes, body: bytes) -> bytes:
    return PREFIX.pack(len(header), len(body)) + header + body


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next (header, body), or None at the end of the stream."""
    prefix = _read_exactly(stream, PREFIX.size)
    if prefix is None:
        return None
    header_len, body_len = PREFIX.unpack(prefix)
    header = _read_exactly(stream, header_len)
    body = _read_exactly(stream, body_len) if body_len else b""
    if header is None or body is None:
        return None
    return header, body


def write_frame(stream: BinaryIO, header: bytes, body: bytes) -> None:
    data = memoryview(encode_frame(header, body))
    while data:
        written = stream.write(data)
        data = data[written or 0 :]
