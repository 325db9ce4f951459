"""One package per method on weaksup's foundation (``weaksup.data``, ``.modeling``,
``.evaluation``, ``.pseudo``, ``.engine``): ``boxcaseg``, ``boxsup``, ``dasnet``, ``hybrid``,
``wei``. Each holds its config keys (``config.py``), modeling, data and pipeline; the foundation
never imports a method. Importing a method package is light (no torch); registration happens in
:mod:`weaksup.registration`.
"""
