"""Hybrid networks (Liao et al.): large- and small-object branches from GrabCut masks.

Modules:

* ``config``: ``add_hybrid_config`` (``MODEL.HYBRID``);
* ``meta_arch``: ``HybridNetwork`` (fused inference) and ``HybridSmallBranch`` (Sec. 2);
* ``pipeline``: the ``Hybrid`` pipeline (GrabCut masks -> branches -> fusion and ablation table).

Importing this package imports none of them: :mod:`weaksup.registration` registers them all, and
:mod:`weaksup.config` composes ``add_hybrid_config`` into ``add_weaksup_config``
(docs/adding_a_method.md).
"""
