"""Where the training masks of box-supervised data come from (``cfg.WEAKSUP.MASK_SOURCE``).

A mask source turns one annotation of the *original* image (before augmentation) into an annotation
with a ``segmentation`` and a ``mask_valid`` flag. The mapper then transforms it like any mask, and
the flag travels into ``Instances.gt_mask_valid``; the mask loss ignores instances flagged False
(:func:`weaksup.modeling.losses.flagged_mask_rcnn_loss`), while their box and class still train.

Offline pseudo masks (GrabCut, candidate segments, BoxCaseg proxy masks) are written into the
annotations of a json file by ``tools/make_pseudo_masks.py`` and read back by the ``"pseudo_json"``
source (``cfg.WEAKSUP.PSEUDO_MASKS``, looked up by annotation id, so any registered box dataset
whose loader keeps annotation ids can train with any pseudo-mask file made from it), or by the
``"annotation"`` source when the pseudo-mask json itself is registered as the training dataset.
"""

from typing import Any, Dict, List, Optional

from detectron2.config import CfgNode
from detectron2.structures import BoxMode
from ..registry import Registry
from ..utils.rle import check_annotation_rles
from .annotation_index import AnnotationIndex
from .datasets.coco import PSEUDO_MASK_KEYS

MASK_SOURCE_REGISTRY = Registry("WEAKSUP_MASK_SOURCE")
MASK_SOURCE_REGISTRY.__doc__ = """
Mask sources for ``cfg.WEAKSUP.MASK_SOURCE``. Each registered class is built as
``cls.from_config(cfg)`` when it has that classmethod, else ``cls()``, and called as
``source(annotation) -> annotation`` (a new dict, the input is left untouched).
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


@MASK_SOURCE_REGISTRY.register("pseudo_json")
class PseudoJsonMaskSource:
    """Masks and flags of a pseudo-mask json (``tools/make_pseudo_masks.py``), looked up by the
    annotation's ``id``: ``segmentation`` (RLE), ``mask_valid`` and the other pseudo-mask keys
    (``box_agreement``, ``pseudo_method``, ``fallback``) replace the annotation's own, so a
    ground-truth mask of the training dataset is never used.

    The training dataset's loader must keep annotation ids (``extra_annotation_keys``), and the
    json must have been made from the same annotations; an annotation without an id or whose id
    the json lacks raises an error naming it. The json is read once into an on-disk
    :class:`~weaksup.data.annotation_index.AnnotationIndex` (``$WEAKSUP_CACHE``), looked up per
    annotation, so no mapper copy holds every RLE.
    """

    def __init__(self, json_file: str):
        if not json_file:
            raise ValueError("cfg.WEAKSUP.MASK_SOURCE='pseudo_json' needs cfg.WEAKSUP.PSEUDO_MASKS")

        def check(data: Dict[str, Any]) -> None:
            annotations = data["annotations"]
            sizes = {i["id"]: (i["height"], i["width"]) for i in data.get("images", [])}
            check_annotation_rles(annotations, sizes, json_file)
            missing = [
                a["id"] for a in annotations if "mask_valid" not in a or "segmentation" not in a
            ]
            if missing:
                raise ValueError(
                    f"{json_file}: annotations without a segmentation or mask_valid (ids "
                    f"{missing[:10]}): not a pseudo-mask json of tools/make_pseudo_masks.py"
                )

        self.json_file = json_file
        # on disk, memory-mapped: no copy of every RLE in each rank's and worker's mapper
        self._by_id = AnnotationIndex.of_json(
            json_file, ("segmentation",) + PSEUDO_MASK_KEYS, check
        )

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "PseudoJsonMaskSource":
        return cls(cfg.WEAKSUP.PSEUDO_MASKS)

    def __call__(self, anno: Dict[str, Any]) -> Dict[str, Any]:
        if "id" not in anno:
            raise KeyError(
                f"an annotation without 'id' (bbox {anno.get('bbox')}) cannot be looked up in "
                f"{self.json_file}: load the training dataset with annotation ids kept "
                "(extra_annotation_keys including 'id')"
            )
        found = self._by_id.get(anno["id"])
        if found is None:
            raise KeyError(f"{self.json_file} has no annotation with id {anno['id']!r}")
        return {**anno, **found, "mask_valid": bool(found["mask_valid"])}


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
    cls = MASK_SOURCE_REGISTRY.get(name)
    return cls.from_config(cfg) if hasattr(cls, "from_config") else cls()
