"""``train_net.py`` on a few PennFudan images, for BoxSup's end-to-end test (which runs it in a
subprocess it can kill). Registers ``tiny_pf_boxonly`` (the first ``TINY_N`` training images,
boxes only), ``tiny_pf`` (the same with GT masks) and ``tiny_pf_val_sem_seg`` (3 val images
with label maps derived from their masks, under ``$WEAKSUP_CACHE``)."""

import os
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, REPO_ROOT)

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.engine import default_argument_parser  # noqa: E402

import train_net  # noqa: E402
from weaksup.data.datasets.pennfudan import load_pennfudan  # noqa: E402
from weaksup.data.datasets.mask_subset import register_instance_sem_seg  # noqa: E402
from weaksup.paths import cache_dir  # noqa: E402
from weaksup.engine.launch import launch  # noqa: E402


def register(root: str, n: int) -> None:
    for name, split, masks, k in (
        ("tiny_pf_boxonly", "train", False, n),
        ("tiny_pf", "train", True, n),
        ("tiny_pf_val", "val", True, 3),
    ):
        DatasetCatalog.register(name, lambda s=split, m=masks, k=k: load_pennfudan(root, s, m)[:k])
        MetadataCatalog.get(name).set(thing_classes=["person"])
    register_instance_sem_seg(
        "tiny_pf_val_sem_seg", "tiny_pf_val", os.path.join(cache_dir(), "sem_seg", "tiny_pf_val")
    )


def main(args):
    """Registers the datasets in every process (``launch`` spawns fresh ones), then trains."""
    register(os.environ["PENNFUDAN_ROOT"], int(os.environ.get("TINY_N", "6")))
    return train_net.main(args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, dist_url=args.dist_url, args=(args,))
