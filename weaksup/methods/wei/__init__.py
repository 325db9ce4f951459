"""Wei et al. 2016: semantic segmentation from image-level labels (HCP, localization maps,
rough masks).

Modules:

* ``config``: ``add_wei_config`` (``MODEL.HCP``, ``WEAKSUP.WEI``);
* ``hcp``: the ``HCP`` classifier (Sec. 3.1);
* ``data``: the image-label and localization-map mappers;
* ``sem_seg_heads``: the soft-label segmentation heads (Eq. 4);
* ``localization``: the torch-free localization maps and rough masks (Sec. 3.2-3.3);
* ``stage2``: proposal scoring, cross-image refinement, maps and masks (Sec. 3.1-3.3);
* ``pipeline``: the ``Wei`` pipeline;
* ``demo_datasets``: the CPU demo's datasets.

Importing this package imports none of them: :mod:`weaksup.registration` registers them all, and
:mod:`weaksup.config` composes ``add_wei_config`` into ``add_weaksup_config``
(docs/adding_a_method.md).
"""
