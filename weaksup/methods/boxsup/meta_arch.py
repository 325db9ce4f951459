"""The semantic-segmentation network of BoxSup: Detectron2's SemanticSegmentor (through
:class:`~weaksup.modeling.meta_arch.SoftTargetSegmentor`, so Wei's configs can train it on soft
targets) plus multi-scale testing ('BoxSup+'), optional dense-CRF post-processing and the
per-pixel log-probabilities that BoxSup's label update reads (Sec. 4.2, E_r)."""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList

from weaksup.modeling.dense_crf import dense_crf
from weaksup.modeling.meta_arch import SoftTargetSegmentor

__all__ = ["BoxSupSegmentor"]


@META_ARCH_REGISTRY.register()
class BoxSupSegmentor(SoftTargetSegmentor):
    """:class:`SemanticSegmentor` (backbone + ``SEM_SEG_HEADS_REGISTRY`` head) with:

    * multi-scale inference (Sec. 5.1, 'BoxSup+'): score maps at each of ``test_scales`` (the
      paper: 0.8, 1.0, 1.2, "+-20% of the original image size"), bilinearly re-scaled to the
      input size and averaged; softmax probabilities are averaged, so every scale weighs the same
      whatever the scale of its logits;
    * optional dense CRF (:func:`weaksup.modeling.dense_crf.dense_crf`) on the averaged scores at
      the input resolution, off by default;
    * :meth:`pixel_log_probs`: single-scale log-probabilities for the label update.

    Inference returns per-class probabilities (``sem_seg``, ``(C, height, width)``), whose argmax
    is the prediction, as :class:`SemSegEvaluator` reads it.
    """

    @configurable
    def __init__(
        self,
        *,
        test_scales: Sequence[float] = (1.0,),
        crf_iterations: int = 0,
        crf_bilateral: Tuple[float, float, float] = (4.0, 50.0, 5.0),
        crf_positional: Tuple[float, float] = (3.0, 3.0),
        crf_window: Tuple[int, int] = (5, 2),
        **kwargs,
    ):
        """
        Args:
            test_scales: image scales averaged at inference.
            crf_iterations: mean-field iterations of the dense CRF; 0 disables it.
            crf_bilateral, crf_positional, crf_window: its kernels and window
                (:func:`dense_crf`'s ``bilateral``, ``positional``, ``(radius, dilation)``).
            kwargs: as :class:`SoftTargetSegmentor`.
        """
        super().__init__(**kwargs)
        if not test_scales or min(test_scales) <= 0:
            raise ValueError(f"test scales must be positive, got {test_scales}")
        self.test_scales = tuple(float(s) for s in test_scales)
        self.crf_iterations = crf_iterations
        self.crf_bilateral = tuple(crf_bilateral)
        self.crf_positional = tuple(crf_positional)
        self.crf_window = tuple(crf_window)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        crf = cfg.MODEL.BOXSUP.CRF
        ret.update(
            test_scales=cfg.MODEL.BOXSUP.TEST_SCALES,
            crf_iterations=crf.ITERATIONS if crf.ENABLED else 0,
            crf_bilateral=(crf.BI_WEIGHT, crf.BI_XY_STD, crf.BI_RGB_STD),
            crf_positional=(crf.POS_WEIGHT, crf.POS_XY_STD),
            crf_window=(crf.WINDOW_RADIUS, crf.WINDOW_DILATION),
        )
        return ret

    def _images(self, batched_inputs: List[Dict]) -> ImageList:
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def _scores(self, images: torch.Tensor, scale: float) -> torch.Tensor:
        """Class logits of a (padded, normalised) batch run at ``scale``, at the batch's size."""
        x = images if scale == 1.0 else F.interpolate(images, scale_factor=scale, mode="bilinear")
        logits = self.sem_seg_head.layers(self.backbone(x))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear")

    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            return self.inference(batched_inputs)
        if any("sem_seg" not in x for x in batched_inputs):
            raise ValueError(
                "BoxSupSegmentor got training images without 'sem_seg': box-supervised training "
                "gets its label maps from the 'BoxSupLabelUpdate' hook (cfg.WEAKSUP.HOOKS)"
            )
        return super().forward(batched_inputs)

    @torch.no_grad()
    def pixel_log_probs(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` log-probabilities of one input image (``(3, H, W)``, the input format),
        single scale, no CRF: the network feedback of BoxSup's E_r."""
        images = self._images([{"image": image}])
        h, w = images.image_sizes[0]
        return F.log_softmax(self._scores(images.tensor, 1.0)[0, :, :h, :w], dim=0)

    def inference(self, batched_inputs: List[Dict]) -> List[Dict]:
        images = self._images(batched_inputs)
        probs = sum(F.softmax(self._scores(images.tensor, s), dim=1) for s in self.test_scales)
        probs = probs / len(self.test_scales)
        results = []
        for p, x, (h, w) in zip(probs, batched_inputs, images.image_sizes):
            p = p[:, :h, :w]
            if self.crf_iterations > 0:
                p = dense_crf(
                    torch.log(p.clamp_min(1e-8)),
                    x["image"].to(p).float(),
                    self.crf_iterations,
                    self.crf_bilateral,
                    self.crf_positional,
                    *self.crf_window,
                )
            out_h, out_w = x.get("height", h), x.get("width", w)
            results.append({"sem_seg": sem_seg_postprocess(p, (h, w), out_h, out_w)})
        return results
