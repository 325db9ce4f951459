#!/usr/bin/env python
"""
Export a trained Mask R-CNN-based weaksup model (box-supervised Mask R-CNN, BoxCaseg's Proxy Mask
R-CNN, Hybrid's large branch) to TorchScript and ONNX by tracing (Detectron2's
``TracingAdapter``, as its ``tools/deploy/export_model.py --export-method tracing``). Examples::

    python tools/export_model.py --config-file output/mine/config.yaml --output export/ \\
        MODEL.WEIGHTS output/mine/model_final.pth
    python tools/export_model.py --config-file configs/Hybrid/demo_pennfudan_R18_FPN_GN.yaml \\
        --format torchscript onnx --sample-image photo.jpg --output export/ \\
        MODEL.HYBRID.LARGE_WEIGHTS output/hybrid_demo/large/model_final.pth

Writes ``model.ts`` (loads with ``torch.jit.load`` after ``import torchvision``, whose ops it
calls; neither Detectron2 nor weaksup is needed), ``model.onnx`` with ``--format onnx`` (needs the
``onnx`` package), and ``export.json`` (also stored inside ``model.ts`` as the extra file
``export.json``): how to feed the model and read its outputs:

* input: one image as a float ``(3, H, W)`` tensor in ``input_format`` channel order (0-255),
  resized so that its shorter side is ``min_size_test`` and its longer at most ``max_size_test``
  (Detectron2's ``ResizeShortestEdge``, as ``DefaultPredictor``); normalization is inside;
* outputs, in ``outputs`` order: ``pred_boxes`` (N, 4) XYXY in the *resized* image,
  ``pred_classes`` (N,), ``pred_masks`` (N, 1, M, M) mask probabilities inside each box (paste
  them into the image as Detectron2's ``paste_masks_in_image``), ``scores`` (N,), and
  ``image_size`` (the resized height, width). Post-processing to the original size is not
  traced (as in Detectron2); ``detectron2.modeling.postprocessing.detector_postprocess`` does it.

The fused Hybrid model runs GrabCut (OpenCV) on its small branch's boxes and is not traceable: its
config exports the large branch. Other models (semantic, BoxCaseg stage 1, DASNet) are refused.
"""

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.export import TracingAdapter
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.utils.logger import setup_logger

from weaksup.cli import add_config_arguments, load_tool_config
from weaksup.utils.file_io import write_json_atomic
from weaksup.utils.checkpoint import load_trained_model

logger = logging.getLogger("weaksup.export")

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17  # the ONNX opset the traced graph is exported with


def setup(args: argparse.Namespace) -> CfgNode:
    cfg = load_tool_config(args)
    cfg.MODEL.DEVICE = "cpu"  # traced on the CPU: the file then runs anywhere torch does
    cfg.freeze()
    return cfg


def exportable_model(cfg: CfgNode) -> GeneralizedRCNN:
    """The model to trace, weights loaded, in eval mode: a :class:`GeneralizedRCNN` whose
    inference is Detectron2's (a fused Hybrid config gives its large branch, from the fused
    checkpoint ``MODEL.WEIGHTS`` or else ``MODEL.HYBRID.LARGE_WEIGHTS``). Weights that leave it
    partly untrained are refused (:func:`load_trained_model`), as ``predict.py`` refuses them."""
    model = build_model(cfg)
    if cfg.MODEL.META_ARCHITECTURE == "HybridNetwork":
        logger.info("HybridNetwork: exporting its large branch (Mask R-CNN); fusion runs GrabCut")
        if cfg.MODEL.WEIGHTS:
            load_trained_model(model, cfg.MODEL.WEIGHTS)
        elif cfg.MODEL.HYBRID.LARGE_WEIGHTS:
            load_trained_model(model.large, cfg.MODEL.HYBRID.LARGE_WEIGHTS)
        else:
            raise ValueError(
                "HybridNetwork: neither MODEL.WEIGHTS (the fused checkpoint) nor MODEL.HYBRID."
                "LARGE_WEIGHTS (the large branch's) is given: nothing trained to export"
            )
        model = model.large
    else:
        load_trained_model(model, cfg.MODEL.WEIGHTS)
    if not isinstance(model, GeneralizedRCNN) or (
        type(model).inference is not GeneralizedRCNN.inference
    ):
        raise ValueError(
            f"{cfg.MODEL.META_ARCHITECTURE}: only Mask R-CNN-based models (Detectron2's "
            "GeneralizedRCNN inference) can be exported"
        )
    return model.eval()


def preprocess(cfg: CfgNode, image_bgr) -> torch.Tensor:
    """``DefaultPredictor``'s input: resized (``INPUT.MIN/MAX_SIZE_TEST``), in
    ``INPUT.FORMAT`` order, as a float (3, H, W) tensor."""
    if cfg.INPUT.FORMAT == "RGB":
        image_bgr = image_bgr[:, :, ::-1]
    aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    image = aug.get_transform(image_bgr).apply_image(image_bgr)
    return torch.as_tensor(image.astype("float32").transpose(2, 0, 1))


def _inference(model: GeneralizedRCNN, inputs: List[Dict]) -> List[Dict]:
    # do_postprocess=False: outputs stay in the input's size, masks stay per box (Detectron2's way)
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def traceable(model: GeneralizedRCNN, image: torch.Tensor) -> TracingAdapter:
    """Detectron2's :class:`TracingAdapter` of ``model`` on the sample ``image``."""
    return TracingAdapter(model, [{"image": image}], _inference)


def output_names(adapter: TracingAdapter, image: torch.Tensor) -> List[str]:
    """Names of the flat outputs (``pred_boxes``, ..., ``image_size``)."""
    with torch.no_grad():
        adapter(image)  # fills adapter.outputs_schema
    instances = adapter.outputs_schema.schemas[0].schemas[0]
    return list(instances.keys) + ["image_size"]


def sample_image(cfg: CfgNode, path: Optional[str]):
    """BGR image to trace with: ``path``, else the first image of ``DATASETS.TEST[0]``."""
    if not path:
        if not cfg.DATASETS.TEST:
            raise ValueError("no DATASETS.TEST image to trace with: give --sample-image")
        path = DatasetCatalog.get(cfg.DATASETS.TEST[0])[0]["file_name"]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--sample-image {path}: no such file")
    return utils.read_image(path, format="BGR"), path


def export(cfg: CfgNode, output: str, formats: Sequence[str], sample: Optional[str]) -> Dict:
    """Trace the model on the sample image and write the files (see the module docstring)."""
    model = exportable_model(cfg)
    image_bgr, sample = sample_image(cfg, sample)
    image = preprocess(cfg, image_bgr)
    adapter = traceable(model, image)
    # Detectron2's Python-side checks (asserts, ifs on tensors) are traced as constants: expected
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    info = {
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "input_format": cfg.INPUT.FORMAT,
        "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
        "max_size_test": cfg.INPUT.MAX_SIZE_TEST,
        "outputs": output_names(adapter, image),
        "sample_image": sample,
        "weights": cfg.MODEL.WEIGHTS,
    }
    os.makedirs(output, exist_ok=True)
    files = {}
    if "torchscript" in formats:
        with torch.no_grad():
            ts_model = torch.jit.trace(adapter, (image,))
        files["torchscript"] = os.path.join(output, "model.ts")
        tmp = files["torchscript"] + ".partial"
        torch.jit.save(ts_model, tmp, _extra_files={"export.json": json.dumps(info)})
        os.replace(tmp, files["torchscript"])
    if "onnx" in formats:
        files["onnx"] = os.path.join(output, "model.onnx")
        tmp = files["onnx"] + ".partial"
        with torch.no_grad():
            torch.onnx.export(
                adapter,
                (image,),
                tmp,
                opset_version=ONNX_OPSET,
                dynamo=False,
                input_names=["image"],
                output_names=info["outputs"],
                dynamic_axes={"image": {1: "height", 2: "width"}},
            )
        os.replace(tmp, files["onnx"])
    info["files"] = files
    write_json_atomic(info, os.path.join(output, "export.json"))
    logger.info(f"exported {cfg.MODEL.META_ARCHITECTURE} to {', '.join(files.values())}")
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", required=True, help="folder for the exported files")
    parser.add_argument("--format", nargs="+", default=["torchscript"], choices=FORMATS)
    parser.add_argument("--sample-image", help="image traced with (default: the first test image)")
    return add_config_arguments(parser)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = build_parser().parse_args(argv)
    setup_logger(name="weaksup")
    cfg = setup(args)
    return export(cfg, args.output, args.format, args.sample_image)


def cli() -> int:
    """``weaksup-export``: exit status 0 once the files are written."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
