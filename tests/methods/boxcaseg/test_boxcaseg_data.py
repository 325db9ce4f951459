"""BoxCaseg data: box jitter, patch mapper on real images, mixed-batch sampler (1 and 2 processes)."""

import json
import os

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg

from conftest import launch_on_cpu, pennfudan_records, shared_path
from weaksup import add_weaksup_config
from weaksup.methods.boxcaseg.data import (
    BoxCasegPatchMapper,
    BoxCasegTestMapper,
    MixedBatchSampler,
    box_instance_records,
    jitter_box,
)


def test_jitter_box_stays_within_the_documented_ranges():
    rng = np.random.RandomState(0)
    box = np.array([100.0, 50.0, 140.0, 150.0])  # half sizes 20 x 50, centre (120, 100)
    for _ in range(500):
        x0, y0, x1, y1 = jitter_box(box, 1000, 1000, rng, 0.25, (0.5, 1.5))
        # centre moved by at most 0.25 half size, each half side scaled by 0.5 .. 1.5
        assert 120 - 5 - 30 <= x0 <= 120 + 5 - 10 and 120 - 5 + 10 <= x1 <= 120 + 5 + 30
        assert 100 - 12.5 - 75 <= y0 <= 100 + 12.5 - 25 and 100 - 12.5 + 25 <= y1 <= 100 + 12.5 + 75
    # one ratio per axis (the authors' bbox_broaden): without the centre shift the jittered
    # box keeps the box's centre, and its width / height ratios cover U(0.5, 1.5)
    ratios = []
    for _ in range(500):
        x0, y0, x1, y1 = jitter_box(box, 1000, 1000, rng, 0.0, (0.5, 1.5))
        assert (x0 + x1) / 2 == pytest.approx(120) and (y0 + y1) / 2 == pytest.approx(100)
        ratios.append(((x1 - x0) / 40, (y1 - y0) / 100))
    ratios = np.array(ratios)
    assert ratios.min() >= 0.5 and ratios.max() <= 1.5 and ratios.std(0).min() > 0.25
    assert abs(np.corrcoef(ratios.T)[0, 1]) < 0.15  # x and y drawn independently
    clipped = jitter_box([0.0, 0.0, 30.0, 30.0], 20, 25, rng)
    assert clipped.min() >= 0 and clipped[2] <= 25 and clipped[3] <= 20


def _cfg(patch=64, resize=72):
    cfg = add_weaksup_config(get_cfg())
    cfg.INPUT.BOXCASEG.PATCH_SIZE = patch
    cfg.INPUT.BOXCASEG.SALIENT_RESIZE = resize
    return cfg


def test_box_patch_maps_the_gt_box_into_the_patch():
    records, masks = pennfudan_records(3)
    mapper = BoxCasegPatchMapper(_cfg(), True)
    np.random.seed(0)
    for rec in box_instance_records(records):
        out = mapper(rec)
        assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.uint8
        x0, y0, x1, y1 = out["mil_box"].tolist()
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert "salient_mask" not in out
    # scale 1, no shift: the crop is the box itself, the MIL box the whole patch
    rec = box_instance_records(records)[0]
    mapper = BoxCasegPatchMapper(
        patch_size=64, salient_resize=72, center_jitter=0, scale_jitter=(1, 1), image_format="BGR"
    )
    assert mapper(rec)["mil_box"].tolist() == [0, 0, 64, 64]


def test_salient_patch_on_ecssd_mask_and_its_tight_box():
    image = shared_path("ECSSD", "images", "0001.jpg")
    mask = shared_path("ECSSD", "ground_truth_mask", "0001.png")
    mapper = BoxCasegPatchMapper(_cfg(), True)
    np.random.seed(1)
    out = mapper({"file_name": str(image), "salient_mask_file": str(mask)})
    m = out["salient_mask"].numpy().astype(bool)
    assert m.shape == (64, 64) and m.any()
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    assert out["mil_box"].tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_test_mapper_keeps_original_resolution_and_annotation_index():
    records, _ = pennfudan_records(2)
    rec = dict(records[1])
    rec["annotations"] = [{**rec["annotations"][0], "iscrowd": 1}] + rec["annotations"]
    out = BoxCasegTestMapper(_cfg(), False)(rec)
    assert out["image"].shape[1:] == (rec["height"], rec["width"])
    assert out["instances"].gt_index.tolist() == list(range(1, len(rec["annotations"])))


def _check_batches(batches, num_box, box_per_batch, salient_per_batch):
    for b in batches:
        assert len(b) == box_per_batch + salient_per_batch
        assert all(i < num_box for i in b[:box_per_batch])
        assert all(i >= num_box for i in b[box_per_batch:])


def test_sampler_ratio_holds_in_every_batch_and_epoch_covers_all_salient():
    num_box, num_sal = 50, 23
    sampler = MixedBatchSampler(num_box, num_sal, 9, 7, seed=0, rank=0, world_size=1)
    it = iter(sampler)
    batches = [next(it) for _ in range(40)]
    _check_batches(batches, num_box, 9, 7)
    epoch = batches[:4]  # ceil(23 / 7) batches per epoch
    assert {i - num_box for b in epoch for i in b[9:]} == set(range(num_sal))
    assert len({i for b in batches[:5] for i in b[:9]}) == 45  # no box repeats within a pass


def test_random_sampling_baseline_mixes_freely():
    """Tab. 5 'RS': batches of 16 from one shuffle of box and salient indices; the salient count
    varies, an epoch covers both sets once."""
    num_box, num_sal = 50, 23
    it = iter(
        MixedBatchSampler(num_box, num_sal, 9, 7, seed=0, rank=0, world_size=1, random_mix=True)
    )
    batches = [next(it) for _ in range(20)]
    assert all(len(b) == 16 for b in batches)
    counts = {sum(i >= num_box for i in b) for b in batches}
    assert len(counts) > 2  # the ratio is not fixed
    flat = [i for b in batches for i in b]
    epoch = flat[: num_box + num_sal]
    assert sorted(epoch) == list(range(num_box + num_sal))


def test_sampler_ranks_take_disjoint_slices_of_the_same_global_batches():
    kw = dict(num_box=40, num_salient=30, box_per_batch=3, salient_per_batch=2, seed=5)
    ranks = [iter(MixedBatchSampler(**kw, rank=r, world_size=2)) for r in (0, 1)]
    seen = []
    for _ in range(6):  # 6 x 6 boxes < 40 and 6 x 4 salient < 30: a pass without repeats
        b0, b1 = next(ranks[0]), next(ranks[1])
        _check_batches([b0, b1], 40, 3, 2)
        seen += b0 + b1
    assert len(set(seen)) == len(seen)


def _sampler_worker(out_dir):
    from detectron2.utils import comm

    sampler = MixedBatchSampler(100, 37, 9, 7)  # seed shared through the process group
    it = iter(sampler)
    with open(os.path.join(out_dir, f"rank{comm.get_rank()}.json"), "w") as f:
        json.dump([next(it) for _ in range(12)], f)


@pytest.mark.slow
def test_sampler_under_two_processes(tmp_path):
    launch_on_cpu(_sampler_worker, 2, str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    _check_batches(r0 + r1, 100, 9, 7)
    # the ranks split the same global batches: no box repeats in the first pass (5 x 18 < 100)
    first_pass = [i for b in r0[:5] + r1[:5] for i in b[:9]]
    assert len(set(first_pass)) == len(first_pass)
    # one epoch (3 global batches of 14 salient) covers all 37 salient images
    assert {i - 100 for b in r0[:3] + r1[:3] for i in b[9:]} == set(range(37))
