#!/usr/bin/env python
"""
Convert box annotations (Pascal VOC XML, labelme, VIA 2, or COCO itself) to a COCO instances json
that ``--register NAME=JSON:IMAGES`` / ``WEAKSUP.DATASETS.COCO`` trains on. Formats and choices:
:mod:`weaksup.data.datasets.convert`. Examples::

    python datasets/convert_to_coco.py --format voc_xml --input VOC/Annotations \\
        --image-root VOC/JPEGImages --output train.json
    python datasets/convert_to_coco.py --format labelme --input labelme_dir --output train.json
    python datasets/convert_to_coco.py --format via --input via_project.json \\
        --image-root images --via-class-attribute type --output train.json
    # a COCO json with its masks removed (box-only)
    python datasets/convert_to_coco.py --format coco --input trainval.json --boxes-only \\
        --output boxes.json

Writes the output atomically and prints the counts of images, boxes and classes.
"""

import argparse
import os
from typing import List, Optional

from weaksup.data.datasets.convert import CONVERTERS, drop_segmentations, via_to_coco
from weaksup.utils.file_io import write_json_atomic


def read_classes(value: Optional[str]) -> Optional[List[str]]:
    """``--classes``: a file with one name per line (labelme's ``labels.txt``: ``__ignore__`` and
    ``_background_`` skipped) or a comma-separated list; None keeps the sorted names found."""
    if not value:
        return None
    if os.path.isfile(value):
        with open(value) as f:
            names = [line.strip() for line in f]
    else:
        names = value.split(",")
    return [n for n in names if n and n not in ("__ignore__", "_background_")]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", required=True, choices=sorted(CONVERTERS))
    parser.add_argument(
        "--input", required=True, help="VOC XML folder, labelme json folder, VIA or COCO json"
    )
    parser.add_argument(
        "--image-root", default=None, help="folder of the images (labelme: the json folder)"
    )
    parser.add_argument("--output", required=True, help="COCO json to write")
    parser.add_argument("--classes", help="class names: a file, one per line, or a,b,c")
    parser.add_argument("--boxes-only", action="store_true", help="drop every segmentation")
    parser.add_argument("--via-class-attribute", help="VIA region attribute holding the class")
    args = parser.parse_args(argv)
    if args.format in ("voc_xml", "via") and not args.image_root:
        parser.error(f"--format {args.format} needs --image-root")
    classes = read_classes(args.classes)
    if args.format == "via":
        coco = via_to_coco(args.input, args.image_root, classes, args.via_class_attribute)
    else:
        coco = CONVERTERS[args.format](args.input, args.image_root, classes)
    if args.boxes_only:
        drop_segmentations(coco)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_json_atomic(coco, args.output)
    print(
        f"{args.output}: {len(coco['images'])} images, {len(coco['annotations'])} boxes, "
        f"{len(coco['categories'])} classes ({', '.join(c['name'] for c in coco['categories'])})"
    )
    return coco


if __name__ == "__main__":
    main()
