"""Detectron2's :class:`SemanticSegmentor` that also takes soft targets in compact form.

A soft target (per-pixel class probabilities, e.g. Wei et al.'s normalised localization maps,
Eq. 4) is dense over all ``C + 1`` classes, but an image has only a few of them: VOC images 1-3
of 21, COCO images a handful of 81. A mapper gives it compactly as ``sem_seg`` ``(L + 1, H, W)``
float (the channels it has) plus ``sem_seg_classes`` ``(L + 1,)`` long (their class indices), so
the loader's worker processes ship ``L + 1`` planes per image instead of ``C + 1`` through shared
memory. :func:`dense_soft_targets` scatters them into ``(C + 1, H, W)`` zeros on the model's
device, where :class:`SemanticSegmentor` pads them (``IGNORE_VALUE``) for the head: the head sees
exactly the dense target (bilinear resizing and flips act on each plane alone, and absent classes
are 0). Hard ``(H, W)`` label maps pass through unchanged.
"""

from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, SemanticSegmentor

__all__ = ["SoftTargetSegmentor", "dense_soft_targets"]


def dense_soft_targets(
    batched_inputs: List[Dict], num_classes: int, device: torch.device
) -> List[Dict]:
    """Inputs whose compact soft ``sem_seg`` (with ``sem_seg_classes``) is scattered into dense
    ``(num_classes, H, W)`` float targets on ``device``; other inputs are returned as they are."""
    out = []
    for x in batched_inputs:
        if "sem_seg_classes" not in x:
            out.append(x)
            continue
        compact, classes = x["sem_seg"], x["sem_seg_classes"]
        if compact.dim() != 3 or len(compact) != len(classes):
            raise ValueError(
                f"image {x.get('file_name')!r}: compact soft target {tuple(compact.shape)} needs "
                f"one plane per entry of sem_seg_classes ({len(classes)})"
            )
        if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"image {x.get('file_name')!r}: sem_seg_classes {classes.tolist()} outside "
                f"0..{num_classes - 1} (MODEL.SEM_SEG_HEAD.NUM_CLASSES)"
            )
        dense = compact.new_zeros((num_classes,) + tuple(compact.shape[1:]), device=device)
        dense[classes.to(device)] = compact.to(device)
        out.append({**x, "sem_seg": dense})
    return out


@META_ARCH_REGISTRY.register()
class SoftTargetSegmentor(SemanticSegmentor):
    """:class:`SemanticSegmentor` whose training inputs may carry compact soft targets (module
    docstring), made dense on the device before the head's loss."""

    @configurable
    def __init__(self, *, num_classes: int, **kwargs):
        """
        Args:
            num_classes: channels of a dense target (``MODEL.SEM_SEG_HEAD.NUM_CLASSES``).
            kwargs: as :class:`SemanticSegmentor`.
        """
        super().__init__(**kwargs)
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["num_classes"] = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        return ret

    def forward(self, batched_inputs: List[Dict]):
        if self.training:
            batched_inputs = dense_soft_targets(batched_inputs, self.num_classes, self.device)
        return super().forward(batched_inputs)
