"""The weaksup trainer: Detectron2's DefaultTrainer with components chosen by config."""

import logging
import weakref
from typing import List

from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..data import build_mapper
from ..evaluation import build_evaluators
from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .hook_registry import HOOK_REGISTRY
from .pipeline import config_value
from .preflight import check_config_names

__all__ = ["WeaksupTrainer"]


class WeaksupTrainer(DefaultTrainer):
    """:class:`DefaultTrainer` whose mapper, evaluators and extra hooks come from the config.

    * train/test mappers: ``cfg.WEAKSUP.TRAIN_MAPPER`` / ``TEST_MAPPER`` (``MAPPER_REGISTRY``);
    * evaluators: ``cfg.WEAKSUP.EVALUATORS`` (``EVALUATOR_REGISTRY``);
    * hooks: ``cfg.WEAKSUP.HOOKS`` (``HOOK_REGISTRY``), added before the metric writers;
    * DDP also on the CPU (gloo), checkpoints written atomically.
    """

    def __init__(self, cfg: CfgNode):
        # DefaultTrainer.__init__ with weaksup's CPU-safe DDP and atomic checkpointer.
        check_config_names(cfg)  # before any work: evaluators / test sets are used last
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(
            model, data_loader, optimizer
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def auto_scale_workers(cls, cfg: CfgNode, num_workers: int) -> CfgNode:
        """Detectron2's rule (:meth:`DefaultTrainer.auto_scale_workers`: with
        ``SOLVER.REFERENCE_WORLD_SIZE`` set, the batch and learning rate scale with the world size
        and the iteration counts inversely), also applied to the methods' own iteration counts,
        ``WEAKSUP.ITERATION_KEYS``: rounded as ``SOLVER.MAX_ITER`` is, a count that was not 0
        stays at least 1 (0 often means "derive it")."""
        scaled = DefaultTrainer.auto_scale_workers(cfg, num_workers)
        if scaled is cfg:  # no scaling: no reference world size, or the same one
            return cfg
        scale = num_workers / cfg.SOLVER.REFERENCE_WORLD_SIZE
        frozen = scaled.is_frozen()
        scaled.defrost()
        for key in scaled.WEAKSUP.ITERATION_KEYS:
            try:
                iters = config_value(scaled, key)
            except KeyError:
                raise KeyError(f"WEAKSUP.ITERATION_KEYS: {key!r} is not a config key") from None
            if iters:
                scaled.merge_from_list([key, max(1, int(round(iters / scale)))])
        if frozen:
            scaled.freeze()
        return scaled

    def build_hooks(self) -> List[hooks.HookBase]:
        ret = super().build_hooks()
        extra = [HOOK_REGISTRY.get(name)(self.cfg) for name in self.cfg.WEAKSUP.HOOKS]
        if ret and isinstance(ret[-1], hooks.PeriodicWriter):  # writers last: they log our metrics
            return ret[:-1] + extra + ret[-1:]
        return ret + extra

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        return build_detection_train_loader(cfg, mapper=build_mapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        return build_detection_test_loader(
            cfg, dataset_name, mapper=build_mapper(cfg, is_train=False)
        )

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_folder=None
    ) -> DatasetEvaluator:
        return build_evaluators(cfg, dataset_name, output_folder)
