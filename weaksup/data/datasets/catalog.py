"""Re-registering derived datasets: a pipeline registers its views (proxy masks, validity
views, per-scheme training sets) on every run, so an earlier registration of the name is
replaced rather than an error."""

from typing import Any, Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["register_or_replace", "remove_dataset"]


def remove_dataset(name: str) -> None:
    """Forget dataset ``name`` and its metadata (nothing when it is not registered)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def register_or_replace(name: str, loader: Callable[[], List[Dict]], **metadata: Any) -> str:
    """Register ``loader`` as dataset ``name`` with ``metadata``, replacing any earlier
    registration of the name; returns ``name``."""
    remove_dataset(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)
    return name
