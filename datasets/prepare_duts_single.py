#!/usr/bin/env python
"""
Filter DUTS-TR to single-object images ("DUTS-Single", BoxCaseg Sec. 4).

BoxCaseg keeps the DUTS-TR images whose salient mask holds one object, but does not give the
rule. The rule here: foreground = mask value >= 128; objects = 8-connected foreground components
covering at least ``--min-area-fraction`` of the image (default 0.5 %: smaller components are
annotation specks, not objects); an image is kept iff it has exactly one object. On ECSSD
(the same kind of data) this keeps 925 of 1000 images.

Writes one image stem per line to ``<duts-root>/DUTS-TR/duts_single.txt`` (read by the
``duts_single_train`` loader)::

    python datasets/prepare_duts_single.py [--duts-root $DETECTRON2_DATASETS/DUTS]
"""

import argparse
import os
from typing import List, Optional

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

MIN_AREA_FRACTION = 0.005


def count_objects(mask: np.ndarray, min_area_fraction: float = MIN_AREA_FRACTION) -> int:
    """Count 8-connected foreground (>= 128) components of >= ``min_area_fraction`` of the mask."""
    labels, n = ndimage.label(mask >= 128, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return int((areas >= min_area_fraction * mask.size).sum())


def is_single_object(mask: np.ndarray, min_area_fraction: float = MIN_AREA_FRACTION) -> bool:
    """The DUTS-Single rule: exactly one object (see the module docstring)."""
    return count_objects(mask, min_area_fraction) == 1


def read_mask(path: str) -> np.ndarray:
    """A 2-D uint8 mask (first channel of an RGB mask); errors name the file."""
    try:
        with Image.open(path) as im:
            mask = np.asarray(im)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read mask {path}: {e}") from e
    return mask[..., 0] if mask.ndim == 3 else mask


def filter_single_object(
    mask_dir: str, min_area_fraction: float = MIN_AREA_FRACTION, mask_ext: str = ".png"
) -> List[str]:
    """Sorted stems of the masks in ``mask_dir`` that hold exactly one object."""
    if not os.path.isdir(mask_dir):
        raise FileNotFoundError(f"Mask folder not found: {mask_dir}")
    stems = sorted(f[: -len(mask_ext)] for f in os.listdir(mask_dir) if f.endswith(mask_ext))
    if not stems:
        raise ValueError(f"{mask_dir}: no {mask_ext} masks")
    return [
        s
        for s in tqdm(stems, desc="DUTS-Single")
        if is_single_object(read_mask(os.path.join(mask_dir, s + mask_ext)), min_area_fraction)
    ]


def main(argv: Optional[List[str]] = None) -> None:
    default_root = os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "DUTS"
    )
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duts-root", default=default_root, help="folder holding DUTS-TR/")
    parser.add_argument("--min-area-fraction", type=float, default=MIN_AREA_FRACTION)
    parser.add_argument("--output", help="list file (default <duts-root>/DUTS-TR/duts_single.txt)")
    args = parser.parse_args(argv)
    tr = os.path.join(args.duts_root, "DUTS-TR")
    output = args.output or os.path.join(tr, "duts_single.txt")
    stems = filter_single_object(os.path.join(tr, "DUTS-TR-Mask"), args.min_area_fraction)
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(s + "\n" for s in stems))
    os.replace(tmp, output)
    print(f"kept {len(stems)} single-object images -> {output}")


if __name__ == "__main__":
    main()
