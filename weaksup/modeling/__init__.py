"""Models of weaksup (registered with Detectron2's registries on import)."""

from . import backbone, losses, meta_arch, roi_heads, sem_seg_heads  # noqa: F401
