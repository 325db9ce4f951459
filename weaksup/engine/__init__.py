"""Trainer pieces and hooks of weaksup."""

from .boxcaseg import BoxCasegTrainer, run_boxcaseg_pipeline
from .boxsup import BoxSupLabelUpdate
from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .device import resolve_device
from .hook_registry import HOOK_REGISTRY
from .hybrid import format_ablation_table, run_hybrid_pipeline
from .launch import launch
from .loss_curve import LossCurve, plot_loss_curves
from .overlays import PredictionOverlays, write_prediction_overlays
from .pipeline import PIPELINE_REGISTRY
from .pseudo_mask_training import run_pseudo_mask_training
from .proxy_masks import generate_proxy_masks, merge_and_drop, proxy_mask_quality
from .trainer import WeaksupTrainer
from .wei import WeiTrainer, format_wei_tables, run_wei_pipeline

__all__ = [
    "AtomicDetectionCheckpointer",
    "BoxCasegTrainer",
    "BoxSupLabelUpdate",
    "PIPELINE_REGISTRY",
    "HOOK_REGISTRY",
    "LossCurve",
    "PredictionOverlays",
    "WeaksupTrainer",
    "WeiTrainer",
    "format_wei_tables",
    "run_wei_pipeline",
    "create_ddp_model",
    "format_ablation_table",
    "launch",
    "generate_proxy_masks",
    "merge_and_drop",
    "proxy_mask_quality",
    "run_boxcaseg_pipeline",
    "run_hybrid_pipeline",
    "run_pseudo_mask_training",
    "plot_loss_curves",
    "resolve_device",
    "write_prediction_overlays",
]
