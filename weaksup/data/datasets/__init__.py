"""Dataset registration (roots from ``$DETECTRON2_DATASETS``, default ``datasets/``)."""
