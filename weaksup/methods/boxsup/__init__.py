"""BoxSup (Dai et al. 2015): semantic segmentation from boxes by iterated candidate labelling.

Modules:

* ``config``: ``add_boxsup_config`` (``MODEL.BOXSUP``);
* ``meta_arch``: ``BoxSupSegmentor`` (multi-scale testing, dense-CRF post-processing);
* ``labelling``: the torch-free labelling of Eq. 3-4 (candidate choice, top-k sampling);
* ``label_update``: the ``BoxSupLabelUpdate`` hook that relabels once per epoch;
* ``demo_datasets``: the CPU demo's datasets.

Importing this package imports none of them: :mod:`weaksup.registration` registers them all, and
:mod:`weaksup.config` composes ``add_boxsup_config`` into ``add_weaksup_config``
(docs/adding_a_method.md).
"""
