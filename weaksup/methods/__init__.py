"""One package per method on weaksup's foundation (``weaksup.data``, ``.modeling``,
``.evaluation``, ``.pseudo``, ``.engine``); :data:`METHODS` is the one place that lists them.

Each method ``<package>`` keeps everything of its own in its folder: ``config.py`` with
``add_<package>_config`` (its keys), its modules (registered with Detectron2's and weaksup's
registries when :mod:`weaksup.registration` imports them), ``configs/<Name>/``,
``docs/<package>.md`` and ``tests/methods/<package>/``. The foundation never imports a method.
Importing this package is light (no torch). docs/adding_a_method.md says how to add one.
"""

__all__ = ["METHODS"]

# package under weaksup/methods -> the method's name (its configs/<Name>/ folder and pipeline).
METHODS = {
    "boxcaseg": "BoxCaseg",
    "boxinst": "BoxInst",
    "boxsup": "BoxSup",
    "dasnet": "DASNet",
    "hybrid": "Hybrid",
    "pseudo_masks": "PseudoMasks",
    "wei": "Wei",
}
