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


def tensor_request(**tensor: object) -> bytes:
    base = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}
    return json.dumps({"inputs": [{**base, **tensor}]}).encode()


def outputs_request(*outputs: object) -> bytes:
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}]
    return json.dumps({"inputs": inputs, "outputs": list(outputs)}).encode()


def sized(size: object) -> tuple[bytes, str]:
    """One binary BYTES element, `b"abc"`, with `size` as its binary_data_size."""
    raw = struct.pack("<I", 3) + b"abc"
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1]}
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]})
    return header.encode() + raw, str(len(header))


# Fields of the wrong type anywhere a client can put them: each is a ProtocolError (a 400).
WRONG_TYPES = [
    ("input-parameters-list", tensor_request(parameters=[1]), None, "parameters"),
    ("input-parameters-string", tensor_request(parameters="x"), None, "parameters"),
    ("output-parameters-list", outputs_request({"name": "label", "parameters": []}), None, "para"),
    ("output-parameters-string", outputs_request({"name": "label", "parameters": "b"}), None, "pa"),
    ("output-not-object", outputs_request("label"), None, "name"),
    ("request-parameters-list", b'{"inputs": [], "parameters": [1]}', None, "parameters"),
    ("size-string", *sized("7"), "binary_data_size"),
    ("size-float", *sized(7.5), "binary_data_size"),
    ("size-negative", *sized(-1), "binary_data_size"),
    ("size-bool", *sized(True), "binary_data_size"),
    ("size-past-the-end", *sized(100), "binary_data_size"),
    ("size-null-data-missing", tensor_request(data=None), None, "strings"),
    ("name-not-string", tensor_request(name={"a": 1}), None, "name"),
    (
        "shape-wraps-int64",
        tensor_request(shape=[4611686018427387905, 4], data=list("abcd")),
        None,
        "needs",
    ),
    ("shape-huge", tensor_request(shape=[10**30], data=["a"]), None, "needs"),
    ("shape-bool", tensor_request(shape=[True]), None, "shape"),
]


@pytest.mark.parametrize(
    ("case", "body", "length", "reason"), WRONG_TYPES, ids=[c[0] for c in WRONG_TYPES]
)
def test_fields_of_the_wrong_type_are_protocol_errors(case, body, length, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse_infer_request(body, length)


@pytest.mark.parametrize("length", ["1_05", " 105", "105 ", "+105", "\u0661\u0660\u0665", "0x69"])
def test_header_length_is_plain_decimal_digits(length):
    body = b'{"inputs": []}' + b" " * 200
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
        parse_infer_request(body, length)
