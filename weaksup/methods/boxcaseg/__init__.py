"""BoxCaseg (Wang et al. 2021): box-supervised class-agnostic segmentation with salient images.

Modules:

* ``config``: ``add_boxcaseg_config`` (``MODEL.BOXCASEG``, ``INPUT.BOXCASEG``,
  ``DATASETS.SALIENT_TRAIN``, ``DATALOADER.BOX_SALIENT_RATIO``);
* ``data``: the patch mappers and the mixed box / salient batch sampler (Sec. 3.2.2);
* ``meta_arch``: the ``BoxCaseg`` meta-architecture (weak, salient and transferred heads, Sec. 3.3);
* ``proxy_masks``: stage 2, proxy masks of every training box with merge and drop (Sec. 3.4);
* ``pipeline``: the ``BoxCaseg`` pipeline (segmentation net -> proxy masks -> Proxy Mask R-CNN).

Importing this package imports none of them: :mod:`weaksup.registration` registers them all, and
:mod:`weaksup.config` composes ``add_boxcaseg_config`` into ``add_weaksup_config``
(docs/adding_a_method.md).
"""
