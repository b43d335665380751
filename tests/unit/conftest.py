"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest

from adapters.backbone import Backbone, load_backbone
from harness.peft_models import saved_encoder
from tests.conftest import tiny_backbone


@pytest.fixture(scope="module", params=["bert", "roberta"])
def tiny(request, tmp_path_factory) -> Backbone:
    """A tiny random encoder saved to disk, loaded back the way the service loads one."""
    path = saved_encoder(tiny_backbone(request.param), tmp_path_factory.mktemp(request.param))
    return load_backbone(str(path))
