"""Prediction overlays: what the model predicts on test images, drawn as pictures."""

import logging
import os
from typing import Dict, List

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.engine import HookBase
from detectron2.utils import comm
from detectron2.utils.visualizer import Visualizer

from ..data import build_mapper
from .hook_registry import HOOK_REGISTRY

__all__ = [
    "add_overlays_config",
    "draw_prediction",
    "write_prediction_overlays",
    "PredictionOverlays",
]

logger = logging.getLogger(__name__)


def add_overlays_config(cfg: CfgNode) -> CfgNode:
    """Add ``cfg.WEAKSUP.VIS`` (prediction overlays written after each evaluation and by
    ``--eval-only``) in place, after ``cfg.WEAKSUP`` exists, and return the config."""
    _C = cfg
    _C.WEAKSUP.VIS = CfgNode()
    # Number of test images drawn per evaluation, taken from the first test dataset.
    _C.WEAKSUP.VIS.NUM_IMAGES = 8
    # Predictions below this score are not drawn.
    _C.WEAKSUP.VIS.SCORE_THRESH = 0.5
    return cfg


def draw_prediction(
    image: np.ndarray, prediction: Dict, metadata, score_thresh: float = 0.0
) -> np.ndarray:
    """
    Draw one image's model output (Detectron2's standard keys) on ``image`` (RGB, HxWx3 uint8):
    ``instances`` (masks, boxes, classes, scores >= ``score_thresh``) when present, else the
    ``sem_seg`` argmax (classes ``metadata.stuff_classes``; a first class named "background" is
    not drawn). Returns the RGB drawing.
    """
    visualizer = Visualizer(image, metadata)
    if "instances" in prediction:
        instances = prediction["instances"].to("cpu")
        instances = instances[instances.scores >= score_thresh]
        return visualizer.draw_instance_predictions(instances).get_image()
    if "sem_seg" in prediction:
        labels = prediction["sem_seg"].argmax(dim=0).to("cpu")
        if list(metadata.get("stuff_classes", []))[:1] == ["background"]:
            labels[labels == 0] = 255  # above every class index: Visualizer skips it
        return visualizer.draw_sem_seg(labels, alpha=0.5).get_image()
    raise ValueError(f"no 'instances' or 'sem_seg' in the model output (keys {sorted(prediction)})")


@torch.no_grad()
def write_prediction_overlays(cfg: CfgNode, model: torch.nn.Module, output_dir: str) -> List[str]:
    """Draw the model's predictions on the first images of the first test dataset.

    Writes ``<output_dir>/<image name>.png`` (atomically) for ``cfg.WEAKSUP.VIS.NUM_IMAGES``
    images of ``cfg.DATASETS.TEST[0]``, predictions with score >= ``cfg.WEAKSUP.VIS.SCORE_THRESH``,
    and returns the written paths. The model is left in the mode it came in.
    """
    if not cfg.DATASETS.TEST or cfg.WEAKSUP.VIS.NUM_IMAGES <= 0:
        return []
    dataset_name = cfg.DATASETS.TEST[0]
    dicts = DatasetCatalog.get(dataset_name)[: cfg.WEAKSUP.VIS.NUM_IMAGES]
    metadata = MetadataCatalog.get(dataset_name)
    mapper = build_mapper(cfg, is_train=False)
    os.makedirs(output_dir, exist_ok=True)
    was_training = model.training
    model.eval()
    paths = []
    try:
        for d in dicts:
            prediction = model([mapper(d)])[0]
            image = utils.read_image(d["file_name"], format="RGB")
            drawn = draw_prediction(image, prediction, metadata, cfg.WEAKSUP.VIS.SCORE_THRESH)
            name = os.path.splitext(os.path.basename(d["file_name"]))[0]
            path = os.path.join(output_dir, f"{name}.png")
            tmp = os.path.join(output_dir, f".{name}.partial.png")
            cv2.imwrite(tmp, drawn[:, :, ::-1])
            os.replace(tmp, path)
            paths.append(path)
    finally:
        model.train(was_training)
    logger.info(f"Wrote {len(paths)} prediction overlays to {output_dir}")
    return paths


@HOOK_REGISTRY.register()
class PredictionOverlays(HookBase):
    """After training, write prediction overlays to ``OUTPUT_DIR/overlays`` (main process)."""

    def __init__(self, cfg: CfgNode):
        self._cfg = cfg

    def after_train(self):
        if comm.is_main_process():
            model = self.trainer.model
            model = getattr(model, "module", model)  # unwrap DDP
            write_prediction_overlays(
                self._cfg, model, os.path.join(self._cfg.OUTPUT_DIR, "overlays")
            )
