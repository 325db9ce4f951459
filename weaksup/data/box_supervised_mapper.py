"""Dataset mapper for box-supervised instance segmentation."""

import copy
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from .build import MAPPER_REGISTRY
from .mask_sources import build_mask_source
from .ssd_augmentation import build_ssd_augmentation

__all__ = ["BoxSupervisedDatasetMapper"]


@MAPPER_REGISTRY.register()
class BoxSupervisedDatasetMapper(DatasetMapper):
    """Detectron2's :class:`DatasetMapper` for data whose masks are weak or absent.

    Differences from the parent:

    * training masks come from a configurable mask source (filled box, pseudo-mask json, ...) and
      ``Instances.gt_mask_valid`` (bool) says which of them the mask loss may use;
    * boxes are the supervision, so they are never recomputed from (pseudo) masks after cropping;
    * the boxes travel with the image through the augmentations (``AugInput.boxes``), so box-aware
      ones such as SSD's min-IoU crop (``cfg.INPUT.SSD``, placed before resize and flip) work;
    * an unreadable or missing image raises an error naming the file and the record.
    """

    @configurable
    def __init__(self, is_train: bool, *, mask_source: Optional[Callable] = None, **kwargs):
        """
        Args:
            is_train, kwargs: as :class:`DatasetMapper` (``use_instance_mask`` and
                ``recompute_boxes`` are decided here).
            mask_source: maps an annotation to one with ``segmentation`` and ``mask_valid``;
                None trains boxes and classes only.
        """
        kwargs.update(use_instance_mask=mask_source is not None, recompute_boxes=False)
        super().__init__(is_train, **kwargs)
        self.mask_source = mask_source

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        ret = super().from_config(cfg, is_train)
        ret.pop("use_instance_mask")
        ret.pop("recompute_boxes")
        ret["mask_source"] = build_mask_source(cfg) if is_train else None
        ret["augmentations"] = build_ssd_augmentation(cfg, is_train) + ret["augmentations"]
        return ret

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return self._map(copy.deepcopy(dataset_dict))
        except OSError as e:  # missing, truncated or unidentifiable image file (PIL)
            raise RuntimeError(
                f"cannot read image {dataset_dict.get('file_name')!r} "
                f"(image_id={dataset_dict.get('image_id')!r}): {e}"
            ) from e

    def _map(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """:meth:`DatasetMapper.__call__`, with the annotation boxes in the augmentation input."""
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg_gt = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)
        boxes = [
            BoxMode.convert(obj["bbox"], obj["bbox_mode"], BoxMode.XYXY_ABS)
            for obj in dataset_dict.get("annotations", [])
            if not obj.get("iscrowd", 0)
        ]
        aug_input = T.AugInput(
            image, boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4), sem_seg=sem_seg_gt
        )
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        dropped = {"keypoints"} if self.mask_source is not None else {"keypoints", "segmentation"}
        annos = []
        for obj in dataset_dict.pop("annotations"):
            if obj.get("iscrowd", 0):
                continue
            obj = {k: v for k, v in obj.items() if k not in dropped}
            if self.mask_source is not None:
                obj = self.mask_source(obj)
            annos.append(utils.transform_instance_annotations(obj, transforms, image_shape))
        instances = utils.annotations_to_instances(
            annos, image_shape, mask_format=self.instance_mask_format
        )
        if self.mask_source is not None:
            instances.gt_mask_valid = torch.tensor(
                [bool(a["mask_valid"]) for a in annos], dtype=torch.bool
            )
        dataset_dict["instances"] = utils.filter_empty_instances(instances)
