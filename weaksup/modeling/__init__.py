"""Models of weaksup (registered with Detectron2's registries on import)."""
