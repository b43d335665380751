"""How the tiers name one adapter version."""

from __future__ import annotations

AdapterKey = tuple[str, int]  # (task, version)
