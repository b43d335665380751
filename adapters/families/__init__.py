"""The registered backbone families: one module each, one line here (`FAMILIES`).

A checkpoint's `model_type` chooses its family; a type no family claims is refused with the
supported families named.
"""

from __future__ import annotations

from adapters.errors import BackboneError
from adapters.families import bert, deberta, modernbert
from adapters.families.base import Family

FAMILIES: tuple[Family, ...] = (bert.Bert(), modernbert.ModernBert(), deberta.Deberta())
BY_MODEL_TYPE = {t: f for f in FAMILIES for t in f.model_types}
BY_NAME = {f.name: f for f in FAMILIES}


def supported() -> str:
    """'bert (bert, roberta, ...); ...': each family and the model types it reads."""
    return "; ".join(f"{f.name} ({', '.join(f.model_types)})" for f in FAMILIES)


def family_for(model_type: str) -> Family:
    family = BY_MODEL_TYPE.get(model_type)
    if family is None:
        raise BackboneError(
            f"model type {model_type!r} is not supported; supported families: {supported()}"
        )
    return family
