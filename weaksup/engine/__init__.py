"""Trainer pieces and hooks of weaksup."""

from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .device import resolve_device
from .hook_registry import HOOK_REGISTRY
from .loss_curve import LossCurve, plot_loss_curves
from .overlays import PredictionOverlays, write_prediction_overlays
from .trainer import WeaksupTrainer

__all__ = [
    "AtomicDetectionCheckpointer",
    "HOOK_REGISTRY",
    "LossCurve",
    "PredictionOverlays",
    "WeaksupTrainer",
    "create_ddp_model",
    "plot_loss_curves",
    "resolve_device",
    "write_prediction_overlays",
]
