"""Open Inference Protocol v2 tensors over HTTP: JSON `data`, and the binary tensor extension
(a JSON header of `Inference-Header-Content-Length` bytes, then each binary tensor's raw bytes
in order; a BYTES element is a little-endian uint32 length and its bytes)."""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
DIGITS = re.compile(r"[0-9]{1,12}", re.ASCII)


class ProtocolError(ValueError):
    """The request does not follow the protocol (answered 400 with {"error": ...})."""


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, list[str]]  # BYTES input name -> its elements, flattened
    outputs: list[str] | None  # requested output names; None: all
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request's BYTES inputs and requested outputs; anything malformed (a field of the
    wrong type included) is a ProtocolError that says what."""
    json_part, raw = _split(body, header_length)
    try:
        request = json.loads(json_part)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"request is not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError("request must be a JSON object with an 'inputs' list")
    inputs: dict[str, list[str]] = {}
    offset = 0
    for tensor in request["inputs"]:
        name, values, used = _input_tensor(tensor, raw, offset)
        if name in inputs:
            raise ProtocolError(f"input '{name}' is given twice")
        inputs[name], offset = values, offset + used
    if offset != len(raw):
        raise ProtocolError(f"{len(raw) - offset} bytes of binary data belong to no input")
    params = _parameters(request, "the request")
    outputs = request.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise ProtocolError("'outputs' must be a list")
    names, binary = None, set()
    if outputs is not None:
        names = [_name(o) for o in outputs]
        binary = {_name(o) for o in outputs if _parameters(o, _name(o)).get("binary_data")}
    rid = request.get("id")
    return InferRequest(
        id=str(rid) if rid is not None else None,
        inputs=inputs,
        outputs=names,
        binary_outputs=binary,
        binary_default=bool(params.get("binary_data_output")),
    )


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not DIGITS.fullmatch(header_length):  # int() would take "1_05", " 105", "+105", ...
        raise ProtocolError(f"{HEADER_LENGTH} must be decimal digits, got {header_length[:20]!r}")
    n = int(header_length)
    if not 0 < n <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} {n} does not fit a {len(body)}-byte body")
    return body[:n], body[n:]


def _field(tensor: Any, key: str) -> Any:
    if not isinstance(tensor, dict) or key not in tensor:
        raise ProtocolError(f"every tensor needs '{key}'")
    return tensor[key]


def _name(tensor: Any) -> str:
    name = _field(tensor, "name")
    if not isinstance(name, str):
        raise ProtocolError("a tensor's 'name' must be a string")
    return name


def _parameters(owner: dict, what: str) -> dict:
    params = owner.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f"'parameters' of {what} must be an object")
    return params


def _input_tensor(tensor: Any, raw: bytes, offset: int) -> tuple[str, list[str], int]:
    """(name, elements, binary bytes used)."""
    name = _name(tensor)
    if _field(tensor, "datatype") != "BYTES":
        raise ProtocolError(f"input '{name}' must be BYTES, got {str(tensor['datatype'])[:20]}")
    shape = _field(tensor, "shape")
    if not isinstance(shape, list) or not all(_count(d) for d in shape):
        raise ProtocolError(f"input '{name}' has an invalid shape {str(shape)[:80]}")
    count = math.prod(shape)  # exact: no 64-bit wraparound
    size = _parameters(tensor, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if not _count(size) or size > len(raw) - offset:
            raise ProtocolError(
                f"input '{name}': binary_data_size must be a byte count within the "
                f"{len(raw) - offset} binary bytes left, got {str(size)[:40]}"
            )
        values = _bytes_elements(raw[offset : offset + size], name)
        used = size
    else:
        values, used = _json_elements(tensor.get("data"), name), 0
    if len(values) != count:
        shown = str(shape) if len(str(shape)) <= 80 else f"of {len(shape)} dimensions"
        needs = str(count) if count <= 10**12 else "more than 10^12"
        raise ProtocolError(
            f"input '{name}' has {len(values)} elements; shape {shown} needs {needs}"
        )
    return name, values, used


def _count(value: Any) -> bool:
    """A non-negative integer (JSON true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_elements(data: Any, name: str) -> list[str]:
    flat: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if data is None or not all(isinstance(x, str) for x in flat):
        raise ProtocolError(f"input '{name}' needs 'data': a list of strings")
    return flat


def _bytes_elements(raw: bytes, name: str) -> list[str]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise ProtocolError(f"input '{name}': truncated BYTES element length")
        (n,) = struct.unpack_from("<I", raw, i)
        if i + 4 + n > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element runs past its data")
        try:
            out.append(raw[i + 4 : i + 4 + n].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"input '{name}' is not UTF-8 text: {exc}") from exc
        i += 4 + n
    return out


@dataclass
class OutputTensor:
    name: str
    datatype: str  # BYTES or FP32
    shape: list[int]
    data: list[Any]  # flat


def encode_response(
    model: str, version: int, request: InferRequest, outputs: list[OutputTensor]
) -> tuple[bytes, dict[str, str]]:
    """(body, extra headers): JSON, or JSON header + binary tensors where asked."""
    tensors, raw = [], []
    for out in outputs:
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if out.name in request.binary_outputs or request.binary_default:
            blob = _binary(out)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            raw.append(blob)
        else:
            tensor["data"] = out.data
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = tensors
    header = json.dumps(response).encode()
    if not raw:
        return header, {"content-type": "application/json"}
    headers = {HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"}
    return header + b"".join(raw), headers


def _binary(out: OutputTensor) -> bytes:
    if out.datatype == "FP32":
        return np.asarray(out.data, dtype="<f4").tobytes()
    parts = []
    for text in out.data:
        data = str(text).encode("utf-8")
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)
