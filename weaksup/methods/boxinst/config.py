"""Configuration keys of BoxInst (Tian et al., CVPR 2021): ``add_boxinst_config``."""

from detectron2.config import CfgNode as CN

__all__ = ["add_boxinst_config"]


def add_boxinst_config(cfg: CN) -> None:
    """Add ``cfg.MODEL.BOXINST`` (BoxInst's loss weights and pairwise settings) in place."""
    _C = cfg
    _C.MODEL.BOXINST = CN()
    # Weights of the two terms of the mask loss L_mask = L_proj + L_pairwise (Sec. 3.1, Eq. 1:
    # both 1; the ROI heads' MODEL.ROI_MASK_HEAD.LOSS_WEIGHT scales both on top).
    _C.MODEL.BOXINST.PROJECTION_WEIGHT = 1.0
    _C.MODEL.BOXINST.PAIRWISE_WEIGHT = 1.0
    _C.MODEL.BOXINST.PAIRWISE = CN()
    # Spacing of the 3 x 3 neighbourhood that defines the edges, in mask bins (Sec. 3.3: "dilation
    # rate 2"); BoxInst's bins are 4 image pixels, a 28 x 28 ROI mask's are box_size / 28.
    _C.MODEL.BOXINST.PAIRWISE.DILATION = 2
    # tau: only edges with colour similarity S_e >= tau train (Sec. 3.3 and Tab. 2: 0.3).
    _C.MODEL.BOXINST.PAIRWISE.COLOR_THRESH = 0.3
    # theta of S_e = exp(-||c_i - c_j|| / theta), Lab colours (Sec. 3.3: 2).
    _C.MODEL.BOXINST.PAIRWISE.THETA = 2.0
    # The pairwise term is ramped up linearly over the first WARMUP_ITERS iterations (AdelaiDet's
    # BoxInst: 10k of the 90k 1x schedule); 0 disables the ramp.
    _C.MODEL.BOXINST.PAIRWISE.WARMUP_ITERS = 10000
    _C.WEAKSUP.ITERATION_KEYS += ["MODEL.BOXINST.PAIRWISE.WARMUP_ITERS"]  # scaled with the batch
    # Side of the mask branch's ROI as a multiple of the proposal (training) or detected box
    # (inference), about its centre. 1.0 is Mask R-CNN's ROI. BoxInst's full-image mask has pixels
    # outside every box (projection target 0); > 1 gives the ROI such a margin (weaksup's choice
    # for Mask R-CNN, not in the paper; docs/boxinst.md).
    _C.MODEL.BOXINST.ROI_SCALE = 1.0
