from .hrnet import HRNet, build_hrnet_backbone

__all__ = ["HRNet", "build_hrnet_backbone"]
