#!/usr/bin/env python
"""The README's picture from a finished run of the README demo (``PseudoMasks`` pipeline): a
training image with its boxes (the only labels), the pseudo masks made from them (green: valid,
red: flagged invalid), and the trained model's masks on a validation image it never saw.

    python tools/demo_figure.py --run-dir output/pennfudan_demo --output docs/demo.png
"""

import argparse
import json
import os
from typing import List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from weaksup.config import load_config
from weaksup.data import build_mapper
from weaksup.engine import WeaksupTrainer
from weaksup.engine.overlays import draw_prediction
from weaksup.pseudo.visualize import draw_pseudo_masks
from weaksup.utils.checkpoint import SafeDetectionCheckpointer
from weaksup.utils.file_io import write_atomic

__all__ = ["demo_figure", "main"]


def _panel(image: np.ndarray, title: str, height: int) -> np.ndarray:
    """``image`` (BGR) scaled to ``height`` with ``title`` on a white strip above it."""
    image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height))
    strip = np.full((28, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image])


def demo_figure(run_dir: str, train_index: int = 0, val_index: int = 0, height: int = 200):
    """The three panels side by side (BGR) from ``run_dir`` (its ``config.yaml``, the
    ``WEAKSUP.PSEUDO_MASKS`` json it names and ``model_final.pth``)."""
    weights = os.path.join(run_dir, "model_final.pth")
    cfg = load_config(os.path.join(run_dir, "config.yaml"), ["MODEL.DEVICE", "cpu"])
    with open(cfg.WEAKSUP.PSEUDO_MASKS) as f:  # the json that stage 2 trained on
        pseudo = json.load(f)
    record = sorted(pseudo["images"], key=lambda r: r["id"])[train_index]
    anns = [a for a in pseudo["annotations"] if a["image_id"] == record["id"]]
    image = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in anns)]
    masks = [mask_util.decode(a["segmentation"]).astype(bool) for a in anns]
    valid = [a["mask_valid"] for a in anns]

    model = WeaksupTrainer.build_model(cfg)
    SafeDetectionCheckpointer(model).load(weights)
    model.eval()
    val = DatasetCatalog.get(cfg.DATASETS.TEST[0])[val_index]
    with torch.no_grad():
        prediction = model([build_mapper(cfg, is_train=False)(val)])[0]
    rgb = cv2.cvtColor(cv2.imread(val["file_name"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    drawn = draw_prediction(rgb, prediction, MetadataCatalog.get(cfg.DATASETS.TEST[0]), 0.5)

    panels = [
        _panel(draw_pseudo_masks(image, [], boxes, []), "1. boxes (the labels)", height),
        _panel(draw_pseudo_masks(image, masks, boxes, valid), "2. pseudo masks", height),
        _panel(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), "3. trained model", height),
    ]
    gap = np.full((height + 28, 6, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="OUTPUT_DIR of a finished demo run")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--train-index", type=int, default=0, help="training image (by id order)")
    parser.add_argument("--val-index", type=int, default=0, help="image of DATASETS.TEST[0]")
    args = parser.parse_args(argv)
    figure = demo_figure(args.run_dir, args.train_index, args.val_index)
    ok, png = cv2.imencode(".png", figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"cannot encode {args.output}")
    write_atomic(png.tobytes(), args.output)
    return [args.output]


if __name__ == "__main__":
    main()
