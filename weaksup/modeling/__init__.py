"""Models shared by weaksup's methods (registered with Detectron2's registries on import):
backbones, the soft-target segmentor, the flagged mask head, semantic-segmentation heads, losses,
the dense CRF."""

from . import backbone, losses, meta_arch, roi_heads, sem_seg_heads  # noqa: F401
