"""Dataset mappers of Wei et al.: HCP's image-level inputs, Network_A's soft targets.

* :class:`ImageLabelDatasetMapper` (HCP, Sec. 3.1): the image, its labels and, for hypothesis
  fine-tuning, the boxes of its few hypotheses among its proposals (candidate file). Records must be image-level
  (:mod:`weaksup.data.datasets.image_labels`): one carrying boxes, masks or label maps is refused,
  so no such annotation can reach HCP.
* :class:`LocalizationMapDatasetMapper` (Network_A / Network_B, Sec. 3.3): Detectron2's
  :class:`DatasetMapper` for semantic segmentation, plus records with a ``localization_map_file``
  (stage-2 npz), whose maps are normalised across channels (Eq. 4's targets) and resized /
  flipped with the image (bilinear). They stay compact, the image's ``L + 1`` channels with their
  class indices in ``sem_seg_classes`` (background 0, label ``c`` at ``c + 1``), and
  :class:`~weaksup.modeling.meta_arch.SoftTargetSegmentor` places them in the dataset's ``C + 1``
  channels on the device: the loader's workers ship ``L + 1`` planes, not ``C + 1``. Rough masks
  come as ordinary ``sem_seg_file_name`` PNGs.
"""

import copy
from typing import Any, Dict, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from weaksup.pseudo.candidate_cache import load_candidates
from weaksup.pseudo.proposals import select_hypotheses
from weaksup.data.build import MAPPER_REGISTRY

from .localization import soft_target

__all__ = ["ImageLabelDatasetMapper", "LocalizationMapDatasetMapper", "load_localization_maps"]

# Record keys that would carry box or pixel supervision; image-level records never have them.
_FORBIDDEN_KEYS = ("annotations", "sem_seg_file_name", "pan_seg_file_name", "localization_map_file")


def hypothesis_kwargs(cfg) -> Dict[str, float]:
    """:func:`~weaksup.pseudo.proposals.select_hypotheses` options from ``cfg.MODEL.HCP``."""
    h = cfg.MODEL.HCP
    return {
        "max_iou": h.HYPOTHESIS_IOU,
        "min_area": h.MIN_HYPOTHESIS_AREA,
        "max_aspect_ratio": h.MAX_ASPECT_RATIO,
    }


def load_localization_maps(path: str) -> Dict[str, np.ndarray]:
    """A stage-2 map file: ``maps`` ``(L + 1, H, W)`` float32 (background first, Eq. 2) and
    ``labels`` ``(L,)`` class indices. Errors name the file."""
    try:
        with np.load(path) as z:
            return {"maps": z["maps"].astype(np.float32), "labels": z["labels"].astype(np.int64)}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable localization-map file ({e})") from e


@MAPPER_REGISTRY.register()
class ImageLabelDatasetMapper:
    """Image-level records -> ``image``, ``image_labels`` (long tensor of class indices) and, with
    ``use_hypotheses``, ``proposal_boxes`` (``(n, 4)`` float, input-image coordinates: the
    hypotheses of the record's ``proposal_file``, transformed with the image)."""

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations,
        image_format: str,
        use_hypotheses: bool,
        num_hypotheses: int = 10,
        hypothesis_kwargs: Optional[Dict[str, float]] = None,
    ):
        """
        Args:
            use_hypotheses: add ``proposal_boxes``: ``num_hypotheses`` boxes chosen by
                :func:`~weaksup.pseudo.proposals.select_hypotheses` (``hypothesis_kwargs``)
                among the tight boxes of the record's candidate file ``proposal_file``.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_hypotheses = use_hypotheses
        self.num_hypotheses = num_hypotheses
        self.hypothesis_kwargs = hypothesis_kwargs or {}

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "use_hypotheses": cfg.MODEL.HCP.MODE == "hypotheses",
            "num_hypotheses": cfg.MODEL.HCP.NUM_HYPOTHESES,
            "hypothesis_kwargs": hypothesis_kwargs(cfg),
        }

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        found = [k for k in _FORBIDDEN_KEYS if k in dataset_dict]
        if found:
            raise ValueError(
                f"image {dataset_dict.get('file_name')!r}: image-level mapper got {found}; "
                "train HCP on an image-level dataset (register_image_labels)"
            )
        d = copy.copy(dataset_dict)
        try:
            image = utils.read_image(d["file_name"], format=self.image_format)
        except OSError as e:
            raise RuntimeError(f"cannot read image {d['file_name']!r}: {e}") from e
        utils.check_image_size(d, image)
        boxes = np.zeros((0, 4), dtype=np.float64)
        if self.use_hypotheses:
            if "proposal_file" not in d:
                raise ValueError(f"image {d['file_name']!r}: hypothesis mode needs proposal_file")
            boxes = load_candidates(d["proposal_file"]).boxes()
            boxes = boxes[select_hypotheses(boxes, self.num_hypotheses, **self.hypothesis_kwargs)]
        aug_input = T.AugInput(image, boxes=boxes)
        self.augmentations(aug_input)
        image = aug_input.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        d["image_labels"] = torch.as_tensor(d["image_labels"], dtype=torch.int64)
        if self.use_hypotheses:
            d["proposal_boxes"] = torch.as_tensor(aug_input.boxes, dtype=torch.float32)
        return d


@MAPPER_REGISTRY.register()
class LocalizationMapDatasetMapper(DatasetMapper):
    """:class:`DatasetMapper` (semantic segmentation) that also reads ``localization_map_file``
    records as compact soft targets: ``sem_seg`` ``(L + 1, H, W)`` float and ``sem_seg_classes``
    ``(L + 1,)`` (module docstring); ``C + 1`` is ``MODEL.SEM_SEG_HEAD.NUM_CLASSES``."""

    @configurable
    def __init__(self, is_train: bool, *, num_classes: int, **kwargs):
        super().__init__(is_train, **kwargs)
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        ret = super().from_config(cfg, is_train)
        ret["num_classes"] = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        return ret

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        if "localization_map_file" not in dataset_dict:
            return super().__call__(dataset_dict)
        d = copy.copy(dataset_dict)
        image = utils.read_image(d["file_name"], format=self.image_format)
        utils.check_image_size(d, image)
        data = load_localization_maps(d.pop("localization_map_file"))
        maps, labels = data["maps"], data["labels"]
        if maps.shape[1:] != image.shape[:2] or len(maps) != len(labels) + 1:
            raise ValueError(
                f"localization maps of {d['file_name']!r}: shape {maps.shape}, labels {labels}, "
                f"image {image.shape[:2]}"
            )
        if len(labels) and labels.max() + 1 >= self.num_classes:
            raise ValueError(
                f"localization maps of {d['file_name']!r}: class {labels.max()} does not fit "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={self.num_classes} (background + classes)"
            )
        if len(np.unique(labels)) != len(labels):
            raise ValueError(f"localization maps of {d['file_name']!r}: repeated labels {labels}")
        # compact: only the image's own channels (SoftTargetSegmentor makes them dense)
        target = np.ascontiguousarray(soft_target(maps).transpose(1, 2, 0))
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        target = transforms.apply_image(target)  # resize: bilinear on float maps
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        d["sem_seg"] = torch.as_tensor(np.ascontiguousarray(target.transpose(2, 0, 1)))
        d["sem_seg_classes"] = torch.as_tensor(np.concatenate([[0], labels + 1]), dtype=torch.int64)
        return d
