#!/usr/bin/env python
"""
Run a trained weaksup model on new images, folders, globs or videos (Detectron2's ``demo.py``
shape). Examples::

    python tools/predict.py --config-file output/mine/config.yaml --input photos/ \\
        --output output/mine/predictions MODEL.WEIGHTS output/mine/model_final.pth
    python tools/predict.py --config-file CONFIG --input "shots/*.jpg" clip.mp4 --output out \\
        --confidence-threshold 0.3 --masks MODEL.WEIGHTS model_final.pth MODEL.DEVICE cpu
    # score the predictions against a COCO json of the same images (pycocotools)
    python tools/predict.py --config-file CONFIG --input images/ --gt-json val.json \\
        --output out MODEL.WEIGHTS model_final.pth

Writes to ``--output``:

* ``overlays/<image>.png`` (``<video>_<frame>.png``: one per frame): the project's visualizer
  (:func:`weaksup.engine.overlays.draw_prediction`: masks, boxes, classes, scores; semantic
  models: the class map);
* ``results.json``: COCO detection results (``image_id``, ``category_id``, ``bbox`` XYWH,
  ``score``, ``segmentation`` as RLE) of instance models; ``sem_seg_results.json``: one RLE per
  image and predicted class of semantic models (``category_id`` = class index, as in the
  ``stuff_classes`` of ``images.json``). Models with both outputs (DASNet) write both;
* ``images.json``: the COCO ``images`` (id, file name, size; ``frame`` for video frames) and
  ``categories`` that the ids above refer to. With ``--gt-json`` ids and category ids are the
  json's (images matched by file name), and COCO AP is computed with pycocotools
  (``metrics.json``; segm only when every ground-truth annotation has a mask);
* with ``--masks``, ``masks/<image>.png``: instance index per pixel (0 = none, k = the k-th
  drawn instance by score; 16-bit beyond 255 instances), or the class index of semantic models.

Every model whose output is Detectron2's ``instances`` and/or ``sem_seg`` works (Mask R-CNN
variants, Hybrid's fused and small-branch models, DASNet, BoxSup and the Wei et al. segmentation
networks); models that need ground-truth boxes at test time (BoxCaseg's stage 1) or predict only
image labels (HCP) do not segment new images and are refused.
"""

import argparse
import glob
import json
import logging
import os
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
import tqdm
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data.catalog import Metadata
from detectron2.engine import DefaultPredictor
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.logger import setup_logger
from PIL import Image

from weaksup.cli import add_config_arguments, load_tool_config
from weaksup.engine.device import resolve_device
from weaksup.engine.overlays import draw_prediction
from weaksup.utils.checkpoint import load_trained_model
from weaksup.utils.file_io import write_json_atomic
from weaksup.utils.image_io import check_image_file

logger = logging.getLogger("weaksup.predict")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
# Meta-architectures whose outputs are not segmentations of a new image.
UNSUPPORTED = {
    "BoxCaseg": "segments given ground-truth boxes (BoxCaseg stage 1); predict with the stage-3 "
    "Proxy Mask R-CNN config instead",
    "HCP": "predicts image-level labels only (Wei et al. stage 1); predict with the "
    "segmentation network's config instead",
}


def expand_inputs(inputs: Sequence[str]) -> List[Tuple[str, str]]:
    """``--input`` items -> ``[(kind, path)]``, kind ``"image"`` or ``"video"``: folders give
    their image files (sorted), globs their matches, files themselves (videos by extension)."""
    out = []
    for item in inputs:
        if os.path.isdir(item):
            paths = sorted(
                os.path.join(item, f)
                for f in os.listdir(item)
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not paths:
                raise FileNotFoundError(f"--input {item}: folder without image files")
        elif glob.has_magic(item):
            paths = sorted(glob.glob(item))
            if not paths:
                raise FileNotFoundError(f"--input {item}: no file matches")
        elif os.path.isfile(item):
            paths = [item]
        else:
            hint = ""
            if item.split(".")[0].isupper():  # e.g. MODEL.WEIGHTS after --input's last path
                hint = " (KEY VALUE overrides go after an option with one value, e.g. --output)"
            raise FileNotFoundError(f"--input {item}: no such file or folder{hint}")
        for path in paths:
            ext = os.path.splitext(path)[1].lower()
            if ext in VIDEO_EXTENSIONS:
                out.append(("video", path))
            elif ext in IMAGE_EXTENSIONS:
                out.append(("image", path))
            else:
                raise ValueError(f"--input {path}: neither an image nor a video file ({ext!r})")
    return out


def check_inputs(inputs: List[Tuple[str, str]]) -> None:
    """Raise ``ValueError`` naming every input that cannot be read, before any prediction:
    images missing, empty, truncated or corrupt (:func:`check_image_file`) or of no format PIL
    knows (its header), videos OpenCV cannot open or read a first frame from."""
    problems = []
    for kind, path in inputs:
        if kind == "image":
            try:
                check_image_file(path, path)
                with Image.open(path):  # the header only
                    pass
            except Exception as e:  # PIL raises several types for unreadable files
                problems.append(f"{path}: {e}")
            continue
        video = cv2.VideoCapture(path)
        ok = video.isOpened() and video.read()[0]
        video.release()
        if not ok:
            problems.append(f"{path}: OpenCV cannot open the video or read a frame of it")
    if problems:
        raise ValueError(
            f"{len(problems)} of {len(inputs)} inputs cannot be read (nothing predicted):\n  "
            + "\n  ".join(problems)
        )


def read_frames(inputs: List[Tuple[str, str]]) -> Iterator[Tuple[Dict, np.ndarray]]:
    """Yield ``(image record, BGR image)`` for every image and every video frame."""
    for kind, path in inputs:
        if kind == "image":
            check_image_file(path, path)
            try:
                image = utils.read_image(path, format="BGR")
            except Exception as e:  # PIL raises several types for unreadable files
                raise ValueError(f"{path}: cannot read the image ({e})") from e
            yield {"file_name": path}, image
            continue
        video = cv2.VideoCapture(path)
        if not video.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open the video")
        frame = 0
        try:
            while True:
                ok, image = video.read()
                if not ok:
                    break
                yield {"file_name": path, "frame": frame}, image
                frame += 1
        finally:
            video.release()
        if frame == 0:
            raise ValueError(f"{path}: no frame could be read from the video")


def count_frames(inputs: List[Tuple[str, str]]) -> Optional[int]:
    """Total number of images and video frames (as the containers report them), for tqdm."""
    total = 0
    for kind, path in inputs:
        if kind == "image":
            total += 1
        else:
            video = cv2.VideoCapture(path)
            total += max(int(video.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            video.release()
    return total or None


def model_metadata(cfg: CfgNode) -> Metadata:
    """Class names for drawing and results: the first test (else training) dataset's metadata,
    loading a lazily-registered json once when its ``thing_classes`` are not known yet."""
    names = [n for n in list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN) if n]
    for name in names:
        if name not in DatasetCatalog.list():
            continue
        meta = MetadataCatalog.get(name)
        if not meta.get("thing_classes", None) and not meta.get("stuff_classes", None):
            DatasetCatalog.get(name)  # Detectron2's COCO loader sets thing_classes
        if meta.get("thing_classes", None) or meta.get("stuff_classes", None):
            return meta
    raise ValueError(
        f"no registered dataset among DATASETS.TEST / TRAIN {names} gives the class names; "
        "register the training json with --register NAME=JSON:IMAGES"
    )


def drawing_metadata(meta: Metadata) -> Metadata:
    """A copy of ``meta`` whose ``stuff_classes`` default to background + the thing classes
    (the label maps of weaksup's semantic datasets)."""
    out = Metadata(name=f"{meta.name}_predict")
    fields = {k: v for k, v in meta.as_dict().items() if k != "name"}
    if "stuff_classes" not in fields and "thing_classes" in fields:
        fields["stuff_classes"] = ["background"] + list(fields["thing_classes"])
    out.set(**fields)
    return out


class GroundTruth:
    """``--gt-json``: its image ids (matched by file name relative to the image root, else base
    name) and category ids (matched by class name)."""

    def __init__(self, json_file: str, thing_classes: Sequence[str]):
        with open(json_file) as f:
            data = json.load(f)
        self.json_file = json_file
        self.has_masks = all("segmentation" in a for a in data["annotations"])
        self._by_path = {os.path.normpath(im["file_name"]): im["id"] for im in data["images"]}
        self._by_base = {os.path.basename(im["file_name"]): im["id"] for im in data["images"]}
        ids = {c["name"]: c["id"] for c in data["categories"]}
        missing = [n for n in thing_classes if n not in ids]
        if missing:
            raise ValueError(f"{json_file}: the model's classes {missing} are not its categories")
        self.category_ids = [ids[n] for n in thing_classes]

    def image_id(self, file_name: str) -> int:
        parts = os.path.normpath(file_name).split(os.sep)
        for k in range(len(parts)):  # the longest trailing path that the json names
            image_id = self._by_path.get(os.path.join(*parts[k:]))
            if image_id is not None:
                return image_id
        if parts[-1] in self._by_base:
            return self._by_base[parts[-1]]
        raise ValueError(f"{self.json_file}: no image record for input {file_name}")


def instance_mask_png(instances) -> np.ndarray:
    """Instance index per pixel (1 = the first instance, later ones drawn over earlier ones
    only where those are empty, i.e. the higher score wins)."""
    h, w = instances.image_size
    dtype = np.uint8 if len(instances) < 256 else np.uint16
    out = np.zeros((h, w), dtype=dtype)
    if instances.has("pred_masks"):
        for k, mask in enumerate(instances.pred_masks.numpy().astype(bool)):
            out[mask & (out == 0)] = k + 1
    return out


def sem_seg_results(labels: np.ndarray, image_id: int) -> List[Dict]:
    """One RLE per predicted class of a label map (COCO stuff-results style)."""
    out = []
    for c in np.unique(labels):
        rle = mask_util.encode(np.asfortranarray((labels == c).astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": image_id, "category_id": int(c), "segmentation": rle})
    return out


def coco_evaluate(gt_json: str, results: List[Dict], with_masks: bool) -> Dict[str, Dict]:
    """pycocotools' COCOeval of ``results`` against ``gt_json`` (AP, AP50, ... in percent)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(gt_json)
    metrics = {}
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    for task in ("bbox", "segm") if with_masks else ("bbox",):
        if not results:
            metrics[task] = {n: 0.0 for n in names}
            continue
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, task)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        # as Detectron2's COCOEvaluator: NaN where pycocotools says -1 (no ground truth there)
        metrics[task] = {
            n: float(100 * ev.stats[i]) if ev.stats[i] >= 0 else float("nan")
            for i, n in enumerate(names)
        }
    return metrics


def setup(args: argparse.Namespace) -> CfgNode:
    cfg = load_tool_config(args)
    # Detectron2's demo: the threshold is the ROI heads' test threshold (models that do not read
    # it, e.g. the fused Hybrid model, are filtered after prediction as well).
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.confidence_threshold
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = args.confidence_threshold
    resolve_device(cfg)
    cfg.freeze()
    reason = UNSUPPORTED.get(cfg.MODEL.META_ARCHITECTURE)
    if reason:
        raise ValueError(f"{args.config_file}: {cfg.MODEL.META_ARCHITECTURE} {reason}")
    return cfg


def _unique_name(base: str, used: Dict[str, int]) -> str:
    n = used.get(base, 0)
    used[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def run(args: argparse.Namespace) -> Dict:
    cfg = setup(args)
    meta = model_metadata(cfg)
    draw_meta = drawing_metadata(meta)
    thing_classes = list(meta.get("thing_classes", []))
    gt = GroundTruth(args.gt_json, thing_classes) if args.gt_json else None
    if gt is not None:
        category_ids = gt.category_ids
    else:  # the training json's own ids when Detectron2 mapped them, else 1..K
        reverse = {v: k for k, v in meta.get("thing_dataset_id_to_contiguous_id", {}).items()}
        category_ids = [reverse.get(i, i + 1) for i in range(len(thing_classes))]
    inputs = expand_inputs(args.input)
    check_inputs(inputs)
    predictor = safe_predictor(cfg)
    overlay_dir = os.path.join(args.output, "overlays")
    mask_dir = os.path.join(args.output, "masks")
    os.makedirs(overlay_dir, exist_ok=True)
    if args.masks:
        os.makedirs(mask_dir, exist_ok=True)
    images, detections, sem_segs, used = [], [], [], {}
    outputs = set()  # the model's output types seen: "instances", "sem_seg"
    vis_thresh = (
        args.confidence_threshold if args.overlay_threshold is None else args.overlay_threshold
    )
    frames = read_frames(inputs)
    for record, image in tqdm.tqdm(
        frames, total=count_frames(inputs), desc="predict", disable=args.no_progress
    ):
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        if "frame" in record:
            stem = f"{stem}_{record['frame']:06d}"
        name = _unique_name(stem, used)
        image_id = (
            len(images) if gt is None or "frame" in record else gt.image_id(record["file_name"])
        )
        h, w = image.shape[:2]
        images.append({"id": image_id, "file_name": record["file_name"], "height": h, "width": w})
        if "frame" in record:
            images[-1]["frame"] = record["frame"]
        with torch.no_grad():
            prediction = predictor(image)
        outputs |= {k for k in ("instances", "sem_seg") if k in prediction}
        if not outputs:
            raise ValueError(
                f"{cfg.MODEL.META_ARCHITECTURE}: output has neither 'instances' nor 'sem_seg'"
            )
        if "instances" in prediction:
            instances = prediction["instances"].to("cpu")
            instances = instances[instances.scores >= args.confidence_threshold]
            prediction["instances"] = instances
            for det in instances_to_coco_json(instances, image_id):
                det["category_id"] = category_ids[det["category_id"]]
                detections.append(det)
            mask = instance_mask_png(instances[instances.scores >= vis_thresh])
        if "sem_seg" in prediction:
            labels = prediction["sem_seg"].argmax(dim=0).to("cpu").numpy()
            sem_segs.extend(sem_seg_results(labels, image_id))
            if "instances" not in prediction:
                mask = labels.astype(np.uint8 if labels.max() < 256 else np.uint16)
        drawn = draw_prediction(image[:, :, ::-1], prediction, draw_meta, vis_thresh)
        _imwrite_atomic(os.path.join(overlay_dir, f"{name}.png"), drawn[:, :, ::-1])
        if args.masks:
            _imwrite_atomic(os.path.join(mask_dir, f"{name}.png"), mask)
    written = {}
    index = {"images": images}
    if thing_classes:
        index["categories"] = [{"id": i, "name": n} for i, n in zip(category_ids, thing_classes)]
    if "sem_seg" in outputs:
        index["stuff_classes"] = list(draw_meta.stuff_classes)
    write_json_atomic(index, os.path.join(args.output, "images.json"))
    if "instances" in outputs:
        written["results"] = os.path.join(args.output, "results.json")
        write_json_atomic(detections, written["results"])
    if "sem_seg" in outputs:
        written["sem_seg_results"] = os.path.join(args.output, "sem_seg_results.json")
        write_json_atomic(sem_segs, written["sem_seg_results"])
    logger.info(
        f"{len(images)} image(s)/frame(s), {len(detections)} detection(s) >= "
        f"{args.confidence_threshold}: overlays in {overlay_dir}, results in {args.output}"
    )
    summary = {"images": len(images), "detections": len(detections), **written}
    if gt is not None and "instances" in outputs:
        metrics = coco_evaluate(gt.json_file, detections, gt.has_masks)
        write_json_atomic(metrics, os.path.join(args.output, "metrics.json"))
        for task, values in metrics.items():
            logger.info(f"{task}: " + ", ".join(f"{k} {v:.1f}" for k, v in values.items()))
        summary["metrics"] = metrics
    return summary


def _imwrite_atomic(path: str, image: np.ndarray) -> None:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial.png")
    if not cv2.imwrite(tmp, image):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--input", nargs="+", required=True, help="images, folders, globs (quoted) or video files"
    )
    parser.add_argument("--output", required=True, help="folder for overlays and results")
    parser.add_argument(
        "--confidence-threshold", type=float, default=0.5, help="detections kept (json, overlays)"
    )
    parser.add_argument(
        "--overlay-threshold",
        type=float,
        default=None,
        help="detections drawn and in --masks (default: --confidence-threshold)",
    )
    parser.add_argument("--masks", action="store_true", help="also write per-image PNG masks")
    parser.add_argument(
        "--gt-json", help="COCO json of the input images: use its ids and report COCO AP"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return add_config_arguments(parser)


def safe_predictor(cfg) -> DefaultPredictor:
    """Detectron2's :class:`DefaultPredictor` whose weights are read by weaksup's safe loader
    (its own checkpointer would unpickle a ``.pkl`` file with plain ``pickle.load``); weights
    that leave the model partly untrained are refused (:func:`load_trained_model`)."""
    weights = cfg.MODEL.WEIGHTS
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    predictor = DefaultPredictor(cfg)  # weights: none, MODEL.WEIGHTS emptied above
    load_trained_model(predictor.model, weights)
    return predictor


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = build_parser().parse_args(argv)
    setup_logger(name="weaksup")
    setup_logger(name="detectron2")
    return run(args)


def cli() -> int:
    """``weaksup-predict``: exit status 0 when something was predicted."""
    return 0 if main() else 1


if __name__ == "__main__":
    sys.exit(cli())
