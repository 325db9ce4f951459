"""Candidate segments of a training image, computed once and kept as a file (BoxSup Sec. 4.2:
"the proposal candidate masks are fixed throughout the training procedure").

Plain numpy + OpenCV. :func:`load_or_make_candidates` returns an image's :class:`CandidateSet`:

* from the user's official MCG file ``<mcg_dir>/<image file stem>.mat`` when ``mcg_dir`` is set
  (:func:`load_mcg_mat`; a missing file is an error naming it);
* else from ``<cache_dir>/<name>.npz``, made by :func:`candidate_segments` the first time and
  written atomically, so any number of processes (data-loader workers, DDP ranks) can fill one
  cache concurrently, and an interrupted job resumes where it stopped.

A cache file stores the :class:`CandidateSet` as MCG does: the superpixel map and, per candidate,
its superpixel ids (concatenated, with offsets), plus the scores and the image size.
"""

import io
import os
import zipfile
from typing import Optional

import numpy as np

from .candidates import CandidateSet, candidate_segments, load_mcg_mat
from ..utils.file_io import write_atomic

__all__ = ["save_candidates", "load_candidates", "load_or_make_candidates"]


def save_candidates(candidates: CandidateSet, path: str) -> None:
    """Write ``candidates`` to ``path`` (``.npz``, compressed) atomically."""
    lengths = np.array([len(ids) for ids in candidates.labels], dtype=np.int64)
    ids = (
        np.concatenate(candidates.labels).astype(np.int32)
        if len(candidates.labels)
        else np.zeros(0, np.int32)
    )
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        superpixels=candidates.superpixels.astype(np.int32),
        ids=ids,
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        scores=np.asarray(candidates.scores, dtype=np.float64),
        image_size=np.asarray(candidates.image_size, dtype=np.int64),
    )
    write_atomic(buf.getvalue(), path)


def load_candidates(path: str) -> CandidateSet:
    """Read a file of :func:`save_candidates`; errors name the file."""
    try:
        with np.load(path) as data:
            sp = data["superpixels"]
            ids, offsets = data["ids"].astype(np.int64), data["offsets"]
            scores, image_size = data["scores"], tuple(int(v) for v in data["image_size"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable candidate-segment file ({e!r})") from e
    labels = [ids[offsets[k] : offsets[k + 1]] for k in range(len(offsets) - 1)]
    return CandidateSet(sp, labels, scores, image_size)


def load_or_make_candidates(
    image_loader,
    file_name: str,
    height: int,
    width: int,
    cache_path: str,
    mcg_dir: Optional[str] = None,
    num_candidates: int = 1000,
    max_side: int = 256,
) -> CandidateSet:
    """The candidate segments of one image (module docstring).

    Args:
        image_loader: called without arguments when the candidates must be made; returns the
            ``(H, W, 3)`` uint8 BGR image.
        file_name, height, width: the image file (its stem names the MCG file) and its size;
            candidates made for another size are an error naming both files.
        cache_path: the ``.npz`` file of the cache.
        mcg_dir: folder of official MCG ``.mat`` files, or None.
        num_candidates, max_side: :func:`candidate_segments` parameters.
    """
    if mcg_dir:
        stem = os.path.splitext(os.path.basename(file_name))[0]
        path = os.path.join(mcg_dir, stem + ".mat")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no MCG file {path} for image {file_name}")
        cands = load_mcg_mat(path)
    elif os.path.isfile(cache_path):
        cands = load_candidates(cache_path)
        path = cache_path
    else:
        cands = candidate_segments(image_loader(), num_candidates=num_candidates, max_side=max_side)
        save_candidates(cands, cache_path)
        path = cache_path
    if tuple(cands.image_size) != (height, width):
        raise ValueError(
            f"{path}: candidates are for a {cands.image_size[1]}x{cands.image_size[0]} image, "
            f"but {file_name} is {width}x{height}"
        )
    return cands
