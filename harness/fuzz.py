"""Seeded mutations of valid requests, for fuzzing the service: JSON trees (a node replaced
by an odd value, removed, added, duplicated or wrapped), safetensors headers (the same, on
the header's JSON) and raw bytes (truncated, flipped, spliced). One `random.Random` drives
everything, so a failing case is reproduced from its seed and index."""

from __future__ import annotations

import copy
import json
import random
import struct
from typing import Any

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    3,
    2**31,
    2**63,
    2**64 + 1,
    -(2**63),
    10**30,
    4611686018427387905,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x",
    "NaN",
    "inf",
    "-1",
    "1_0",
    " 1",
    "\u0000",
    "\ud800",
    "é" * 3,
    "a" * 5000,
    [],
    [1],
    [[]],
    ["a"],
    [None],
    ["a", 1],
    [[["a"]]],
    {},
    {"a": 1},
    {"binary_data_size": "x"},
    {"binary_data": [1]},
    [[[[[[[[[[[]]]]]]]]]]],
]
KEY_NAMES = ["name", "datatype", "shape", "data", "parameters", "inputs", "outputs", "id"]
KEY_NAMES += ["binary_data_size", "binary_data", "binary_data_output", "r", "lora_alpha"]
KEY_NAMES += ["target_modules", "task_type", "modules_to_save", "layers_to_transform"]
KEY_NAMES += ["__metadata__", "dtype", "data_offsets", "peft_type", "use_dora", "x"]


def _nodes(tree: Any, path: tuple = ()) -> list[tuple]:
    """Every path into `tree` (the root is `()`)."""
    out = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _nodes(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _nodes(value, (*path, i))
    return out


def _get(tree: Any, path: tuple) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def mutate_json(tree: Any, rng: random.Random, rounds: int = 1) -> Any:
    """A mutated deep copy of `tree`."""
    tree = copy.deepcopy(tree)
    for _ in range(rounds):
        path = rng.choice(_nodes(tree))
        if not path:  # the root itself
            if rng.random() < 0.2:
                tree = copy.deepcopy(rng.choice(ODD_VALUES))
            continue
        parent, last = _get(tree, path[:-1]), path[-1]
        action = rng.choice(("replace", "replace", "delete", "add", "duplicate", "wrap"))
        if action == "replace":
            parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[rng.choice(KEY_NAMES)] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action == "add":
            parent.insert(last, copy.deepcopy(rng.choice(ODD_VALUES)))
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        else:
            parent[last] = [parent[last]]
    return tree


def dumps(tree: Any) -> bytes:
    """JSON as a careless client might write it: NaN and Infinity included; a lone
    surrogate stays an escape (the bytes are valid UTF-8, the text is not)."""
    return json.dumps(tree, allow_nan=True).encode()


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    i = rng.randrange(len(data))
    action = rng.choice(("truncate", "flip", "insert", "splice", "zero"))
    if action == "truncate":
        return data[:i]
    if action == "flip":
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if action == "insert":
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) + data[i:]
    if action == "splice":
        j = rng.randrange(len(data))
        return data[:i] + data[j : j + rng.randrange(1, 64)] + data[i:]
    return data[:i] + b"\0" * (len(data) - i)


def mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    """The file with its header JSON mutated (the tensor bytes kept), or its bytes mutated."""
    n = int.from_bytes(data[:8], "little")
    if rng.random() < 0.3 or n > len(data):
        return mutate_bytes(data, rng)
    header = json.loads(data[8 : 8 + n])
    new = dumps(mutate_json(header, rng, rounds=rng.randint(1, 2)))
    return struct.pack("<Q", len(new)) + new + data[8 + n :]


# (a value with leading spaces is no test: HTTP strips them, and h11 will not send them)
ODD_LENGTHS = ["0", "-5", "abc", "1_0", "1 2", "+12", "99999999999999999999", "\u0661\u0662"]


def odd_length(rng: random.Random, real: int) -> str:
    """An Inference-Header-Content-Length that is off: not digits, or not the header's."""
    return rng.choice([*ODD_LENGTHS, str(real + rng.randint(1, 50)), str(max(1, real - 7))])
