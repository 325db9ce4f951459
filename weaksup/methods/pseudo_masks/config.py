"""Configuration keys of the pseudo-mask training recipe: ``add_pseudo_masks_config``."""

from detectron2.config import CfgNode as CN

__all__ = ["add_pseudo_masks_config"]


def add_pseudo_masks_config(cfg: CN) -> CN:
    """Add ``cfg.WEAKSUP.PSEUDO_STAGE`` (in place; after ``cfg.WEAKSUP`` exists)."""
    _C = cfg
    _C.WEAKSUP.PSEUDO_STAGE = CN()
    # Pseudo-mask method of stage 1 (weaksup.pseudo.METHODS, e.g. "consensus", "grabcut",
    # "ellipse"); its masks of DATASETS.TRAIN[0] train the model of stage 2.
    _C.WEAKSUP.PSEUDO_STAGE.METHOD = "consensus"
    # A mask is valid (trains the mask head) when its agreement with the box is >= this.
    _C.WEAKSUP.PSEUDO_STAGE.VALID_THRESHOLD = 0.5
    # Worker processes per training process (0: in the process itself).
    _C.WEAKSUP.PSEUDO_STAGE.NUM_WORKERS = 0
    # Images per shard (the unit of work that is saved and resumed).
    _C.WEAKSUP.PSEUDO_STAGE.SHARD_SIZE = 32
    # Seed of the methods' randomness (each annotation's own seed derives from it and its id).
    _C.WEAKSUP.PSEUDO_STAGE.SEED = 0
    return cfg
