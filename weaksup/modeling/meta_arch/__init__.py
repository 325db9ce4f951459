from .boxcaseg import BoxCaseg
from .boxsup import BoxSupSegmentor
from .dasnet import DASNet

__all__ = ["BoxCaseg", "BoxSupSegmentor", "DASNet"]
