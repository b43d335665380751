"""Fuzzing `/v2` inference (JSON and the binary tensor extension) and PEFT upload parts with
seeded mutations of valid requests, built by the real `tritonclient` (v2) and by PEFT
(uploads). No answer may be a 5xx other than the documented kinds, every error has its
documented shape, no keep-alive connection is dropped, and the valid baseline works after.

`UNIPELT_FUZZ_CASES` sets the cases per surface (250), `UNIPELT_FUZZ_SEED` the seed."""

from __future__ import annotations

import json
import os
import random
from collections import Counter

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from adapters import peft_layout as P
from adapters.backbone import packaged_backbone_path
from adapters.peft_import import read_peft_dir
from harness.fuzz import dumps, mutate_bytes, mutate_json, mutate_safetensors, odd_length
from harness.peft_models import make_peft_adapter
from harness.reliability import AUTH

pytestmark = [pytest.mark.service, pytest.mark.slow]
CASES = int(os.environ.get("UNIPELT_FUZZ_CASES", "250"))
SEED = int(os.environ.get("UNIPELT_FUZZ_SEED", "2024"))
TASK, PEFT_TASK = "fuzz", "fuzzpeft"
DOCUMENTED_5XX = {"corrupt_adapter", "non_finite_output"}
TEXTS = ["a gripping film", "dull"]


@pytest.fixture(scope="module")
def url(slot, minilm) -> str:
    return slot.with_task(minilm, TASK)


@pytest.fixture(scope="module")
def triton_client(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    yield client
    client.close()


def text_input(binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
    return tensor


def baseline_works(client: triton.InferenceServerClient) -> bool:
    for binary in (False, True):
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "scores")]
        result = client.infer(TASK, [text_input(binary)], outputs=outputs)
        if result.as_numpy("scores").shape != (len(TEXTS), 2):
            return False
    return True


def problem(r: httpx.Response, v2: bool) -> str | None:
    """What is wrong with an answer to a fuzzed request, or None."""
    if r.status_code < 400:
        return None
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} not JSON: {r.text[:120]!r}"
    if v2 and (not isinstance(body, dict) or list(body) != ["error"]):
        return f"{r.status_code} not the protocol's error shape: {r.text[:120]!r}"
    if not v2 and (not isinstance(body, dict) or not {"error", "detail"} <= set(body)):
        return f"{r.status_code} not the error shape: {r.text[:120]!r}"
    kind = str(body["error"]).split(":")[0]
    if r.status_code >= 500 and kind not in DOCUMENTED_5XX:
        return f"undocumented {r.status_code} {kind}: {r.text[:200]!r}"
    return None


class Tally:
    def __init__(self, surface: str) -> None:
        self.surface, self.statuses, self.problems = surface, Counter(), []

    def add(self, case: int, r: httpx.Response | None, v2: bool, what: str = "") -> None:
        if r is None:
            self.statuses["dropped"] += 1
            self.problems.append(f"case {case}: connection dropped ({what[:160]})")
            return
        self.statuses[r.status_code] += 1
        found = problem(r, v2)
        if found is not None:
            self.problems.append(f"case {case}: {found}")

    def report(self) -> str:
        fives = sum(n for s, n in self.statuses.items() if isinstance(s, int) and s >= 500)
        return (
            f"{self.surface}: {sum(self.statuses.values())} cases, statuses "
            f"{dict(sorted(self.statuses.items(), key=str))}, 5xx {fives}, "
            f"problems {len(self.problems)}"
        )


def send(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response | None:
    """The answer; None when the connection was dropped (a client-side refusal to send a
    malformed request is raised: the case itself is wrong)."""
    try:
        return client.request(method, path, **kwargs)
    except httpx.LocalProtocolError:
        raise
    except httpx.TransportError:
        return None


def test_v2_json_requests(url, triton_client):
    body, _ = triton.InferenceServerClient.generate_request_body(
        [text_input(False)], outputs=[triton.InferRequestedOutput("label")]
    )
    tree, rng, tally = json.loads(body), random.Random(SEED), Tally("/v2 JSON")
    with httpx.Client(base_url=url, timeout=60) as client:
        assert send(client, "POST", f"/v2/models/{TASK}/infer", content=body).status_code == 200
        for case in range(CASES):
            mutated = dumps(mutate_json(tree, rng, rounds=rng.randint(1, 3)))
            headers = {"content-type": "application/json"}
            tally.add(
                case,
                send(client, "POST", f"/v2/models/{TASK}/infer", content=mutated, headers=headers),
                v2=True,
            )
    print(tally.report())
    assert tally.problems == [] and baseline_works(triton_client)


def test_v2_binary_requests(url, triton_client):
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("label", "scores")]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [text_input(True)], outputs=outputs
    )
    header, raw = json.loads(body[:json_size]), body[json_size:]
    rng, tally = random.Random(SEED + 1), Tally("/v2 binary")
    with httpx.Client(base_url=url, timeout=60) as client:
        for case in range(CASES):
            head = (
                dumps(mutate_json(header, rng, rng.randint(1, 2)))
                if rng.random() < 0.6
                else (body[:json_size])
            )
            tail = mutate_bytes(raw, rng) if rng.random() < 0.5 else raw
            length = str(len(head)) if rng.random() < 0.7 else odd_length(rng, len(head))
            headers = {"Inference-Header-Content-Length": length.encode()}  # non-ASCII too
            r = send(
                client, "POST", f"/v2/models/{TASK}/infer", content=head + tail, headers=headers
            )
            tally.add(case, r, v2=True, what=f"length {length!r}, header {head[:100]!r}")
    print(tally.report())
    assert tally.problems == [] and baseline_works(triton_client)


ODD_FIELDS = [
    "",
    " ",
    "[",
    "[" * 3000,
    '["a", 1]',
    "a,a",
    ",",
    "1",
    "true",
    "maybe",
    "-1",
    "99999999999999999999",
    "NaN",
    "BAD..NAME",
    "x" * 300,
    "\u00e9",
]


@pytest.fixture(scope="module")
def peft_parts(tmp_path_factory) -> tuple[bytes, bytes]:
    out = tmp_path_factory.mktemp("peft")
    make_peft_adapter(packaged_backbone_path(), out, num_labels=2, lora_std=0.05)
    return read_peft_dir(out)


def test_peft_upload_parts(url, peft_parts):
    config_bytes, weights_bytes = peft_parts
    config, rng, tally = json.loads(config_bytes), random.Random(SEED + 2), Tally("PEFT upload")
    with httpx.Client(base_url=url, timeout=120, headers=AUTH) as client:
        for case in range(CASES):
            cfg = (
                dumps(mutate_json(config, rng, rng.randint(1, 2)))
                if rng.random() < 0.5
                else (config_bytes)
            )
            weights = (
                mutate_safetensors(weights_bytes, rng) if rng.random() < 0.5 else (weights_bytes)
            )
            fields = {"task": PEFT_TASK, "labels": "no,yes"}
            for name in ("task", "labels", "text_pair", "max_length"):
                if rng.random() < 0.15:
                    fields[name] = rng.choice(ODD_FIELDS)
            files = {
                "adapter_config": (P.CONFIG_FILE, cfg),
                "adapter_weights": (P.WEIGHTS_FILE, weights),
            }
            if rng.random() < 0.05:
                files.pop(rng.choice(list(files)))
            tally.add(case, send(client, "PUT", "/adapters", files=files, data=fields), v2=False)
        baseline = {
            "adapter_config": (P.CONFIG_FILE, config_bytes),
            "adapter_weights": (P.WEIGHTS_FILE, weights_bytes),
        }
        r = client.put("/adapters", files=baseline, data={"task": PEFT_TASK, "labels": "no,yes"})
    print(tally.report())
    assert tally.problems == [] and r.status_code == 201, r.text
