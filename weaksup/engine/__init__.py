"""Trainer pieces and hooks of weaksup."""
from .hook_registry import HOOK_REGISTRY

__all__ = ["HOOK_REGISTRY"]
