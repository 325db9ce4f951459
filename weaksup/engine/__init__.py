"""Generic trainer pieces of weaksup: trainer, hooks, launch, DDP, checkpoint and the stages
of multi-stage pipelines. Nothing here names a method (those live in ``weaksup.methods``)."""

from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .device import resolve_device
from .hook_registry import HOOK_REGISTRY
from .launch import launch
from .loss_curve import LossCurve, plot_loss_curves
from .overlays import PredictionOverlays, write_prediction_overlays
from .pipeline import PIPELINE_REGISTRY
from .trainer import WeaksupTrainer

__all__ = [
    "AtomicDetectionCheckpointer",
    "PIPELINE_REGISTRY",
    "HOOK_REGISTRY",
    "LossCurve",
    "PredictionOverlays",
    "WeaksupTrainer",
    "create_ddp_model",
    "launch",
    "plot_loss_curves",
    "resolve_device",
    "write_prediction_overlays",
]
