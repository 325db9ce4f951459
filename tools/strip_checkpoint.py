#!/usr/bin/env python
"""Strip a training checkpoint down to the model weights, for release.

Training checkpoints (``model_final.pth``) also hold the optimizer, scheduler and iteration. The
released file keeps only ``{"model": state_dict}`` (plus ``__author__``), loadable with
``DetectionCheckpointer(model).load(path)`` or ``MODEL.WEIGHTS``, as in Detectron2's model zoo.

Usage: python tools/strip_checkpoint.py output/model_final.pth release/model.pth
"""

import argparse
import hashlib
import os
import sys

import torch

from weaksup.utils.checkpoint import load_checkpoint_file


def strip_checkpoint(src: str, dst: str) -> str:
    """Write the model-only checkpoint of ``src`` to ``dst`` (atomically); return its sha256."""
    try:
        ckpt = load_checkpoint_file(src)  # never runs code from the file
    except OSError as e:
        raise ValueError(f"{src}: cannot read checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{src}: not a Detectron2 training checkpoint (no 'model' entry)")
    model = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in ckpt["model"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".partial"
    torch.save({"model": model, "__author__": "weaksup"}, tmp)
    os.replace(tmp, dst)
    with open(dst, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="training checkpoint, e.g. output/model_final.pth")
    parser.add_argument("output", help="where to write the stripped checkpoint")
    args = parser.parse_args()
    try:
        digest = strip_checkpoint(args.input, args.output)
    except ValueError as e:
        sys.exit(f"error: {e}")
    size = os.path.getsize(args.output) / 2**20
    print(f"wrote {args.output} ({size:.1f} MiB, sha256 {digest[:8]})")


if __name__ == "__main__":
    main()
