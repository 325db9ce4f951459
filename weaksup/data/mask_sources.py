"""Where the training masks of box-supervised data come from (``cfg.WEAKSUP.MASK_SOURCE``).

A mask source turns one annotation of the *original* image (before augmentation) into an annotation
with a ``segmentation`` and a ``mask_valid`` flag. The mapper then transforms it like any mask, and
the flag travels into ``Instances.gt_mask_valid``; the mask loss ignores instances flagged False
(:func:`weaksup.modeling.losses.flagged_mask_rcnn_loss`), while their box and class still train.

Offline pseudo masks (GrabCut, candidate segments, BoxCaseg proxy masks) are written into the
annotations of a json file by the pseudo-label tools and read back by the ``"annotation"`` source.
"""

from typing import Any, Dict, List, Optional

from detectron2.config import CfgNode
from detectron2.structures import BoxMode
from ..registry import Registry

MASK_SOURCE_REGISTRY = Registry("WEAKSUP_MASK_SOURCE")
MASK_SOURCE_REGISTRY.__doc__ = """
Mask sources for ``cfg.WEAKSUP.MASK_SOURCE``. Each registered class is built as ``cls()`` and
called as ``source(annotation) -> annotation`` (a new dict, the input is left untouched).
"""


def box_polygon(anno: Dict[str, Any]) -> List[List[float]]:
    """The annotation's box as a one-polygon segmentation (x0,y0, x1,y0, x1,y1, x0,y1)."""
    x0, y0, x1, y1 = BoxMode.convert(anno["bbox"], anno["bbox_mode"], BoxMode.XYXY_ABS)
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@MASK_SOURCE_REGISTRY.register("box")
class FilledBoxMaskSource:
    """The filled box as the mask ("rectangles", BoxSup Sec. 5.1 / Tab. 2): always usable.

    Any ``segmentation`` the annotation carries is ignored, so ground truth cannot leak in.
    """

    def __call__(self, anno: Dict[str, Any]) -> Dict[str, Any]:
        return {**anno, "segmentation": box_polygon(anno), "mask_valid": True}


@MASK_SOURCE_REGISTRY.register("annotation")
class AnnotationMaskSource:
    """The annotation's own ``segmentation`` (pseudo-mask json or ground truth).

    Its ``mask_valid`` flag is kept (default True). An annotation without a segmentation gets the
    filled box as a placeholder flagged unusable, so every instance has a mask of the right shape
    and none of the placeholders trains the mask head.
    """

    def __call__(self, anno: Dict[str, Any]) -> Dict[str, Any]:
        if "segmentation" in anno:
            return {**anno, "mask_valid": bool(anno.get("mask_valid", True))}
        return {**anno, "segmentation": box_polygon(anno), "mask_valid": False}


def build_mask_source(cfg: CfgNode) -> Optional[Any]:
    """The mask source named by ``cfg.WEAKSUP.MASK_SOURCE``; None for ``"none"`` (boxes only)."""
    name = cfg.WEAKSUP.MASK_SOURCE
    if name == "none":
        if cfg.MODEL.MASK_ON:
            raise ValueError(
                "cfg.WEAKSUP.MASK_SOURCE='none' gives no training masks, but cfg.MODEL.MASK_ON is "
                "True: choose a mask source (e.g. 'box' or 'annotation') or set MODEL.MASK_ON False"
            )
        return None
    return MASK_SOURCE_REGISTRY.get(name)()
