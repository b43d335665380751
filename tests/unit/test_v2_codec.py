"""The v2 tensor codec refuses malformed requests with a reason (a 400, never a 500)."""

from __future__ import annotations

import json
import struct

import pytest

from service.api.v2_codec import ProtocolError, parse_infer_request


def binary_request(elements: list[bytes], size: int | None = None) -> tuple[bytes, str]:
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(elements)]}
    tensor["parameters"] = {"binary_data_size": len(raw) if size is None else size}
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, str(len(header))


def test_binary_and_json_bytes_tensors_parse():
    body, length = binary_request([b"caf\xc3\xa9", b""])
    assert parse_infer_request(body, length).inputs == {"text": ["café", ""]}
    request = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]}]
    }
    assert parse_infer_request(json.dumps(request).encode(), None).inputs == {"text": ["a", "b"]}


@pytest.mark.parametrize(
    ("body", "length", "reason"),
    [
        (b"[]", None, "'inputs' list"),
        (
            b'{"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1]}]}',
            None,
            "BYTES",
        ),
        (
            b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]}',
            None,
            "needs 2",
        ),
        (
            b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [3]}]}',
            None,
            "strings",
        ),
        (*binary_request([b"abc"], size=5), "runs past"),
        (binary_request([b"\xff"])[0], binary_request([b"\xff"])[1], "UTF-8"),
        (b"{}", "99", "does not fit"),
    ],
)
def test_malformed_requests_are_protocol_errors(body, length, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_infer_request(body, length)
