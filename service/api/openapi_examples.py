"""Request and response examples of the OpenAPI document, and the schemas of the Open Inference
Protocol's bodies (its routes read the raw body, so FastAPI derives none)."""

from __future__ import annotations

from typing import Any

GATES = {
    "prefix": [0.501953, 0.473143, 0.488246, 0.515178, 0.614839, 0.522507],
    "lora_q": [0.520014, 0.590167, 0.596974, 0.670856, 0.672219, 0.706109],
    "lora_v": [0.523012, 0.468531, 0.537922, 0.529519, 0.499924, 0.68241],
    "adapter": [0.513879, 0.552875, 0.576639, 0.625087, 0.531453, 0.531087],
}


def _example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


PREDICT_REQUEST = {
    "one text": _example("One text", {"inputs": "a gripping, beautifully acted film"}),
    "several": _example(
        "Several texts in one call",
        {"inputs": ["a gripping, beautifully acted film", "dull and far too long"]},
    ),
    "pair": _example(
        "A text pair (tasks trained on pairs)",
        {"inputs": {"text": "A man is playing a guitar.", "text_pair": "A man plays music."}},
    ),
    "gates": _example(
        "Ask for the gate values too", {"inputs": "not bad at all", "return_gates": True}
    ),
}
PREDICT_RESPONSE = {
    "classification": _example(
        "A label with its scores",
        {
            "task": "sst2",
            "version": 1,
            "predictions": [
                {
                    "label": "positive",
                    "scores": {"negative": 0.0012, "positive": 0.9988},
                    "value": None,
                    "gates": None,
                }
            ],
        },
    ),
    "gates": _example(
        "With return_gates: one value per layer for each submodule the task has",
        {
            "task": "sst2",
            "version": 1,
            "predictions": [
                {
                    "label": "negative",
                    "scores": {"negative": 0.7158, "positive": 0.2842},
                    "value": None,
                    "gates": GATES,
                }
            ],
        },
    ),
    "regression": _example(
        "A regression task answers a value",
        {
            "task": "stsb",
            "version": 2,
            "predictions": [{"label": None, "scores": None, "value": 3.87, "gates": None}],
        },
    ),
}
FANOUT_REQUEST = {
    "two tasks": _example(
        "Every input through every task",
        {"tasks": ["sst2", "topic"], "inputs": ["a fine film", "the match ended 2-1"]},
    ),
}
FANOUT_RESPONSE = {
    "two tasks": _example(
        "One answer per task, in request order",
        {
            "results": [
                {
                    "task": "sst2",
                    "version": 1,
                    "predictions": [
                        {"label": "positive", "scores": {"negative": 0.03, "positive": 0.97}},
                        {"label": "negative", "scores": {"negative": 0.61, "positive": 0.39}},
                    ],
                },
                {
                    "task": "topic",
                    "version": 4,
                    "predictions": [
                        {"label": "film", "scores": {"film": 0.91, "sport": 0.09}},
                        {"label": "sport", "scores": {"film": 0.02, "sport": 0.98}},
                    ],
                },
            ]
        },
    ),
}
ADAPTER_VERSION = {
    "task": "sst2",
    "version": 2,
    "sha256": "70a525d47317c0ab5d7e1c2f4a0b9f3e8d6c5b4a39281706f5e4d3c2b1a09f8e",
    "size_bytes": 1240376,
    "uploaded_at": "2025-01-05T10:31:02.125000+00:00",
    "live": True,
    "method": "apl",
    "metrics": {"dev_accuracy": 0.815, "test_accuracy": 0.758},
    "split": None,
}
UPLOAD_REQUEST = {
    "artifact": _example(
        "An artifact: `curl -X PUT -F manifest=@manifest.json -F weights=@adapter.safetensors`",
        {"manifest": "(manifest.json)", "weights": "(adapter.safetensors)"},
    ),
    "peft": _example(
        "A PEFT LoRA adapter, converted by the server",
        {
            "adapter_config": "(adapter_config.json)",
            "adapter_weights": "(adapter_model.safetensors)",
            "task": "mine",
            "labels": "neg,pos",
        },
    ),
}
UPLOAD_RESPONSE = {"uploaded": _example("Version 2 is live", ADAPTER_VERSION)}
ROLLBACK_REQUEST = {
    "previous": _example("The version before the live one", {}),
    "version": _example("A given version", {"version": 1}),
}
ROLLBACK_RESPONSE = {
    "rolled back": _example("Version 1 is live", {**ADAPTER_VERSION, "version": 1}),
}
ROUTING = {"task": "sst2", "live_version": 7, "split": {"7": 90, "8": 10}, "generation": 12}
TRAFFIC_REQUEST = {
    "canary": _example("Send 10% of unpinned requests to version 8", {"split": {"7": 90, "8": 10}}),
    "conditional": _example(
        "The same, only if nobody changed the routing since generation 11",
        {"split": {"7": 90, "8": 10}, "if_generation": 11},
    ),
}
TRAFFIC_RESPONSE = {"split": _example("Version 7 live, 8 takes 10%", ROUTING)}
PROMOTE_REQUEST = {"canary": _example("Version 8 takes all traffic", {"version": 8})}
PROMOTE_RESPONSE = {
    "promoted": _example(
        "Version 8 live, no split", {**ROUTING, "live_version": 8, "split": None, "generation": 13}
    )
}
GATE_AVERAGES_RESPONSE = {
    "recorded": _example(
        "Mean gates over the last 40 inputs this replica recorded for the live version",
        {"task": "sst2", "version": 1, "inputs": 40, "window": 256, "gates": GATES},
    ),
}

INFER_REQUEST = {
    "single texts": _example(
        "Two texts (JSON tensors)",
        {
            "id": "req-1",
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "data": ["a gripping, beautifully acted film", "dull and far too long"],
                }
            ],
        },
    ),
    "pair": _example(
        "A pair task takes text and text_pair",
        {
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["A man sings."]},
                {"name": "text_pair", "datatype": "BYTES", "shape": [1], "data": ["He plays."]},
            ],
            "outputs": [{"name": "label"}],
        },
    ),
}
INFER_RESPONSE = {
    "classification": _example(
        "label and scores",
        {
            "model_name": "sst2",
            "model_version": "1",
            "id": "req-1",
            "outputs": [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [2],
                    "data": ["positive", "negative"],
                },
                {
                    "name": "scores",
                    "datatype": "FP32",
                    "shape": [2, 2],
                    "data": [0.0012, 0.9988, 0.949, 0.051],
                },
            ],
        },
    ),
}

TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {
            "type": "string",
            "description": "text, text_pair (inputs); label, scores, value (outputs)",
        },
        "datatype": {"type": "string", "examples": ["BYTES", "FP32"]},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "data": {"type": "array", "items": {}, "description": "Elements, flattened."},
        "parameters": {
            "type": "object",
            "description": "binary_data_size (binary tensor extension)",
        },
    },
}
PROTOCOL_SCHEMAS: dict[str, Any] = {
    "InferTensor": TENSOR,
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/InferTensor"}},
            "outputs": {
                "type": "array",
                "description": "Outputs to return (default: all); parameters.binary_data asks "
                "for one in binary",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
            "parameters": {"type": "object", "description": "binary_data_output: all binary"},
        },
    },
    "InferResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/InferTensor"}},
        },
    },
    "ProtocolErrorOut": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "<kind>: <detail>"}},
    },
}

INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/InferRequest"},
            "examples": INFER_REQUEST,
        },
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "Binary tensor extension: the JSON request (its length in the "
            "Inference-Header-Content-Length header), then the tensors' bytes",
        },
    },
}
INFER_HEADER = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "schema": {"type": "integer", "minimum": 0},
    "description": "Binary tensor extension: bytes of the JSON part at the start of the body",
}

# (method, path) -> (request examples, 2xx response examples)
EXAMPLES: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any]]] = {
    ("POST", "/v1/{task}/predict"): (PREDICT_REQUEST, PREDICT_RESPONSE),
    ("POST", "/v1/predict"): (FANOUT_REQUEST, FANOUT_RESPONSE),
    ("PUT", "/adapters"): (UPLOAD_REQUEST, UPLOAD_RESPONSE),
    ("POST", "/adapters/{task}/rollback"): (ROLLBACK_REQUEST, ROLLBACK_RESPONSE),
    ("GET", "/adapters/{task}/gates"): (None, GATE_AVERAGES_RESPONSE),
    ("GET", "/adapters/{task}/traffic"): (None, TRAFFIC_RESPONSE),
    ("PUT", "/adapters/{task}/traffic"): (TRAFFIC_REQUEST, TRAFFIC_RESPONSE),
    ("POST", "/adapters/{task}/promote"): (PROMOTE_REQUEST, PROMOTE_RESPONSE),
    ("POST", "/v2/models/{task}/infer"): (INFER_REQUEST, INFER_RESPONSE),
    ("POST", "/v2/models/{task}/versions/{version}/infer"): (INFER_REQUEST, INFER_RESPONSE),
}
