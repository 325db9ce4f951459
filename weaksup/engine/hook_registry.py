"""Training hooks chosen by config (``cfg.WEAKSUP.HOOKS``)."""

from ..registry import Registry

HOOK_REGISTRY = Registry("WEAKSUP_HOOK")
HOOK_REGISTRY.__doc__ = """
Training hooks for ``cfg.WEAKSUP.HOOKS``. Each registered object is called as ``obj(cfg)`` and
returns a :class:`detectron2.engine.HookBase`; the trainer inserts them after its default hooks,
before the final :class:`~detectron2.engine.hooks.PeriodicWriter` (so it writes their metrics).
"""
