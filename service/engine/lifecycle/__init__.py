"""Adapter lifecycle: the management facade, live-version resolver, loader, device pool, host
tier, warmer, sizing, upload checks and PEFT uploads."""
