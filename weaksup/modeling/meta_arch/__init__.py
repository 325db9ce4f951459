from .boxcaseg import BoxCaseg
from .boxsup import BoxSupSegmentor
from .dasnet import DASNet
from .hybrid import HybridNetwork, HybridSmallBranch
from .hcp import HCP

__all__ = ["BoxCaseg", "BoxSupSegmentor", "DASNet", "HybridNetwork", "HybridSmallBranch", "HCP"]
