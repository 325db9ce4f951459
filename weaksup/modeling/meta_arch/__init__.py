from .boxcaseg import BoxCaseg
from .dasnet import DASNet

__all__ = ["BoxCaseg", "DASNet"]
