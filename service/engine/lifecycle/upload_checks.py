"""Everything an upload must pass before it is published: the artifact's own checks, this
server's size limits, and a canary forward pass."""

from __future__ import annotations

import torch

from adapters.artifact import Artifact, parse_artifact
from adapters.backbone import Backbone
from adapters.bank import BankSizes, TaskBank
from adapters.model import UniPELTModel
from adapters.peft_header import Limits
from adapters.plan import plan_batch
from service.engine.lifecycle.peft_upload import PeftUpload, peft_artifact_bytes
from service.errors import InvalidAdapterError
from service.settings import Settings

CANARY_TEXT = ("the quick brown fox jumps over the lazy dog", "a second segment")


def bank_sizes(settings: Settings) -> BankSizes:
    """The largest sizes this server's bank holds."""
    return BankSizes(
        lora_rank=settings.pool_max_lora_rank,
        bottleneck=settings.pool_max_bottleneck,
        prefix_length=settings.pool_max_prefix_length,
        num_labels=settings.pool_max_labels,
    )


class UploadCheck:
    def __init__(
        self,
        settings: Settings,
        backbone: Backbone,
        model: UniPELTModel,
        tokenizer,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.settings, self.backbone, self.model = settings, backbone, model
        self.tokenizer, self.device, self.dtype = tokenizer, device, dtype

    def __call__(self, manifest_bytes: bytes, weights: bytes) -> Artifact:
        """Schema, backbone, tensors (`parse_artifact`), server limits, canary."""
        artifact = parse_artifact(manifest_bytes, weights, self.backbone)
        self.check_limits(artifact)
        if self.settings.canary_on_upload:
            self.canary(artifact)
        return artifact

    def convert_peft(self, upload: PeftUpload) -> tuple[bytes, bytes]:
        """A PEFT upload as artifact bytes; sizes are checked against this server's limits
        before the conversion allocates anything."""
        s = self.settings
        limits = Limits(
            max_lora_rank=min(s.pool_max_lora_rank, Limits.max_lora_rank),
            max_labels=min(s.pool_max_labels, Limits.max_labels),
            rank_setting=Settings.env_name("pool_max_lora_rank"),
            labels_setting=Settings.env_name("pool_max_labels"),
        )
        return peft_artifact_bytes(upload, self.backbone, limits)

    def check_limits(self, artifact: Artifact) -> None:
        """Within these limits an adapter fits a bank slot by construction (`size_pool`)."""
        used, s = artifact.config.used_sizes, self.settings
        limits = [  # (name in the artifact, its value, the setting that bounds it)
            ("lora_r", used.lora_rank, "pool_max_lora_rank"),
            ("bottleneck", used.bottleneck, "pool_max_bottleneck"),
            ("prefix_length", used.prefix_length, "pool_max_prefix_length"),
            ("labels", artifact.manifest.num_labels, "pool_max_labels"),
        ]
        for name, value, setting in limits:
            limit = getattr(s, setting)
            if value > limit:
                raise InvalidAdapterError(
                    f"{name}={value} exceeds this server's limit of {limit} "
                    f"({Settings.env_name(setting)})"
                )

    @torch.inference_mode()
    def canary(self, artifact: Artifact) -> None:
        """Run the adapter once on a fixed input; it must give finite outputs."""
        bank = TaskBank.from_tasks(
            [(artifact.config, artifact.weights)], self.backbone.dims, self.device, self.dtype
        )
        pair = CANARY_TEXT if artifact.manifest.tokenizer.text_pair else CANARY_TEXT[:1]
        enc = self.tokenizer(*[[t] for t in pair], return_tensors="pt")
        out = self.model(
            enc["input_ids"].to(self.device),
            enc["attention_mask"].to(self.device),
            bank,
            torch.zeros(1, dtype=torch.long, device=self.device),
            enc.get("token_type_ids").to(self.device) if "token_type_ids" in enc else None,
            plan=plan_batch(bank, [0], padded=False),  # host-side: no device read
        )
        if not torch.isfinite(out.logits).all():
            raise InvalidAdapterError("canary forward pass produced NaN or Inf outputs")
