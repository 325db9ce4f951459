"""Dataset mappers whose image errors name the file and the image id.

Detectron2's ``DatasetMapper`` (the default test mapper) reads images with Pillow, whose errors
("image file is truncated", "cannot identify image file") reach the user from inside a data-loader
worker without the record. :func:`build_mapper` wraps every mapper in :class:`NamedImageErrors`.
"""

from typing import Any, Callable, Dict

__all__ = ["NamedImageErrors"]


class NamedImageErrors:
    """Call ``mapper``; an ``OSError`` (missing, empty, truncated or unidentifiable image) becomes
    a ``RuntimeError`` naming the record's ``file_name`` and ``image_id``. Other attributes are
    the mapper's."""

    def __init__(self, mapper: Callable[[Dict[str, Any]], Any]):
        self.mapper = mapper

    def __call__(self, dataset_dict: Dict[str, Any]) -> Any:
        try:
            return self.mapper(dataset_dict)
        except OSError as e:
            raise RuntimeError(
                f"cannot read image {dataset_dict.get('file_name')!r} "
                f"(image_id={dataset_dict.get('image_id')!r}): {e}"
            ) from e

    def __getattr__(self, name: str) -> Any:
        if name == "mapper":  # not set yet (unpickling in a data-loader worker)
            raise AttributeError(name)
        return getattr(self.mapper, name)

    def __repr__(self) -> str:
        return f"NamedImageErrors({self.mapper!r})"
