"""Dataset views of BoxSup's nuts CPU demo (``configs/BoxSup/demo/nuts_boxsup_R18_GN.yaml``).

* ``nuts_coco_val_sem_seg``: the 6 nuts_coco val images (:mod:`weaksup.data.datasets.nuts_labelme`'s split) with label maps
  derived once from their instance masks (``$WEAKSUP_CACHE/sem_seg/nuts_coco_val``), for the
  ``sem_seg`` evaluator. Training uses ``nuts_coco_train`` with ``WEAKSUP.BOXSUP.IGNORE_GT_MASKS``.
"""

import os

from weaksup.data.datasets.mask_subset import register_instance_sem_seg
from weaksup.paths import cache_dir

register_instance_sem_seg(
    "nuts_coco_val_sem_seg", "nuts_coco_val", os.path.join(cache_dir(), "sem_seg", "nuts_coco_val")
)
