from .boxcaseg import BoxCaseg

__all__ = ["BoxCaseg"]
