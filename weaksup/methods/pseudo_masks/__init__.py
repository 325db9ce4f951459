"""Boxes in, masks out in one job: pseudo masks of every training box (any method of
``weaksup.pseudo``), then a Mask R-CNN trained on them; the README demo and the box-supervised
baseline of Hybrid Tab. 1 / BoxCaseg Tab. 1 (docs/pseudo_masks.md).

Modules: ``config`` (``add_pseudo_masks_config``: ``WEAKSUP.PSEUDO_STAGE``), ``pipeline`` (the
``PseudoMasks`` pipeline).
"""
