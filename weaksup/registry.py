"""Registries with short, config-friendly names."""

from typing import Any, Callable, Optional, Union

from detectron2.utils.registry import Registry as _Registry

__all__ = ["Registry"]


class Registry(_Registry):
    """Detectron2's (fvcore's) :class:`Registry` that can also register under a given name.

    ``@REG.register()`` registers under ``obj.__name__`` as usual; ``@REG.register("coco")``
    registers under ``"coco"``, so configs can say ``EVALUATORS: ["coco"]``.
    """

    def register(self, obj: Optional[Union[str, Any]] = None) -> Any:
        if isinstance(obj, str):
            name = obj

            def deco(func_or_class: Any) -> Any:
                self._do_register(name, func_or_class)
                return func_or_class

            return deco
        return super().register(obj)
