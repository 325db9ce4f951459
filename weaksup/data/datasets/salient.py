"""
Salient-object images (image + binary 0/255 mask, one object each) for BoxCaseg joint training
(BoxCaseg Sec. 3.2.1 and Sec. 4 "DUTS-Single").

Dicts: ``{file_name, height, width, image_id, salient_mask_file}``; metadata
``thing_classes=["object"]``. Image sizes come from the image headers (PIL opens lazily).
"""

import os
from typing import Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from .sanitize import check_annotation_file, sanitize_dataset_dicts

__all__ = ["load_salient_images", "register_salient"]


def _read_list(list_file: str) -> List[str]:
    check_annotation_file(list_file)
    with open(list_file) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def load_salient_images(
    image_dir: str,
    mask_dir: str,
    list_file: Optional[str] = None,
    image_ext: str = ".jpg",
    mask_ext: str = ".png",
) -> List[Dict]:
    """
    Pair ``image_dir/<stem><image_ext>`` with ``mask_dir/<stem><mask_ext>``.

    Args:
        list_file: optional text file with one image stem per line (e.g. the DUTS-Single list
            written by ``datasets/prepare_duts_single.py``); without it every image is used.
    """
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image folder not found: {image_dir}")
    if list_file is not None:
        stems = _read_list(list_file)
        source = list_file
    else:
        stems = sorted(f[: -len(image_ext)] for f in os.listdir(image_dir) if f.endswith(image_ext))
        source = image_dir
    dicts = []
    for image_id, stem in enumerate(stems):
        file_name = os.path.join(image_dir, stem + image_ext)
        mask_file = os.path.join(mask_dir, stem + mask_ext)
        for path in (file_name, mask_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{source}: record {stem!r}: file not found: {path}")
        with Image.open(file_name) as im:
            width, height = im.size
        dicts.append(
            {
                "file_name": file_name,
                "height": height,
                "width": width,
                "image_id": image_id,
                "salient_mask_file": mask_file,
            }
        )
    return sanitize_dataset_dicts(dicts, source, num_classes=1)


def register_salient(
    name: str, image_dir: str, mask_dir: str, list_file: Optional[str] = None, **kwargs
) -> None:
    """Register a salient-image dataset; ``kwargs`` go to :func:`load_salient_images`."""
    DatasetCatalog.register(
        name, lambda: load_salient_images(image_dir, mask_dir, list_file, **kwargs)
    )
    MetadataCatalog.get(name).set(
        thing_classes=["object"], image_root=image_dir, mask_root=mask_dir
    )
