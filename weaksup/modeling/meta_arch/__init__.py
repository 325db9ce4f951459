from .boxcaseg import BoxCaseg
from .boxsup import BoxSupSegmentor
from .dasnet import DASNet
from .hybrid import HybridNetwork, HybridSmallBranch

__all__ = ["BoxCaseg", "BoxSupSegmentor", "DASNet", "HybridNetwork", "HybridSmallBranch"]
