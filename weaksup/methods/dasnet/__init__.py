"""DASNet (Niu et al.): detection, box attention and segmentation modules.

Modules:

* ``config``: ``add_dasnet_config`` (``MODEL.DASNET``);
* ``attention, detection, position_sensitive, segmentation``: the modules of Sec. 3.2-3.4;
* ``meta_arch``: the ``DASNet`` meta-architecture (semantic and instance branches; two training
  stages).

Importing this package imports none of them: :mod:`weaksup.registration` registers them all, and
:mod:`weaksup.config` composes ``add_dasnet_config`` into ``add_weaksup_config``
(docs/adding_a_method.md).
"""
