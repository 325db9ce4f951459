"""BoxInst (Tian et al., CVPR 2021) on Mask R-CNN: box-supervised mask losses, the baseline of
the box-only methods.

Modules: ``config`` (``add_boxinst_config``: ``MODEL.BOXINST``), ``losses`` (the projection and
pairwise terms, Sec. 3.2-3.3), ``roi_heads`` (``BoxInstROIHeads`` and the mask head that trains
with them). Registered by :mod:`weaksup.registration` (docs/boxinst.md).
"""
