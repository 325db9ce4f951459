"""Registers every weaksup component: the one place that imports all of them.

Importing this module imports the foundation packages (whose modules register the shared
datasets, mappers, mask sources, backbones, heads, evaluators and hooks) and every module of each
method that registers something (meta-architectures, heads, mappers, datasets, hooks,
pipelines), as PointRend's ``from . import roi_heads as _`` does. ``from weaksup import
add_weaksup_config`` (and ``load_config``) import it first, so a config that names a weaksup
component can be used right away. Nothing inside weaksup imports this module.
"""

from . import data, engine, evaluation, modeling  # noqa: F401  (foundation)
from .methods.boxcaseg import data as _boxcaseg_data  # noqa: F401
from .methods.boxcaseg import meta_arch as _boxcaseg_meta_arch  # noqa: F401
from .methods.boxcaseg import pipeline as _boxcaseg_pipeline  # noqa: F401
from .methods.boxsup import demo_datasets as _boxsup_demo_datasets  # noqa: F401
from .methods.boxsup import label_update as _boxsup_label_update  # noqa: F401
from .methods.boxsup import meta_arch as _boxsup_meta_arch  # noqa: F401
from .methods.dasnet import meta_arch as _dasnet_meta_arch  # noqa: F401
from .methods.hybrid import meta_arch as _hybrid_meta_arch  # noqa: F401
from .methods.hybrid import pipeline as _hybrid_pipeline  # noqa: F401
from .methods.wei import data as _wei_data  # noqa: F401
from .methods.wei import demo_datasets as _wei_demo_datasets  # noqa: F401
from .methods.wei import hcp as _wei_hcp  # noqa: F401
from .methods.wei import pipeline as _wei_pipeline  # noqa: F401
from .methods.wei import sem_seg_heads as _wei_sem_seg_heads  # noqa: F401
