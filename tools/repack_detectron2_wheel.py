#!/usr/bin/env python
"""Turn the cp310-only ``sal-detectron2`` wheel into a pure-Python ``py3-none-any`` wheel.

``sal-detectron2==0.7.2`` is upstream Detectron2 (commit a59f056) published only for CPython 3.10.
Its Python code runs on 3.11+, but the wheel carries (a) a compiled ``detectron2/_C*.so`` that only
loads on 3.10, and (b) a stray top-level ``tools/`` package that would shadow any project's
``tools/`` folder. This script drops both, marks the wheel pure-Python and rewrites ``RECORD``.
Without ``_C``, Detectron2 lacks rotated-box ops and deformable conv (weaksup uses neither) and its
COCO evaluator falls back to pycocotools.

Standard library only: it runs before anything else is installed.

Usage: python tools/repack_detectron2_wheel.py IN.whl OUT_DIR  (prints the new wheel's path)
"""

import argparse
import os
import re
import sys
import zipfile


def _dropped(name: str) -> bool:
    return name.startswith("tools/") or re.match(r"detectron2/_C\..*\.(so|pyd)$", name) is not None


def repack(src: str, out_dir: str) -> str:
    """Write the repacked wheel into ``out_dir`` and return its path."""
    base = os.path.basename(src)
    m = re.match(r"(?P<dist>[^-]+)-(?P<ver>[^-]+)-.*\.whl$", base)
    if m is None:
        raise ValueError(f"{src}: not a wheel file name")
    dist, ver = m.group("dist"), m.group("ver")
    dst = os.path.join(out_dir, f"{dist}-{ver}-py3-none-any.whl")
    info = f"{dist}-{ver}.dist-info/"
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        if info + "WHEEL" not in names:
            raise ValueError(f"{src}: no {info}WHEEL inside; is this the sal-detectron2 wheel?")
        tmp = dst + ".tmp"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
            for name in names:
                if _dropped(name):
                    continue
                data = zin.read(name)
                if name == info + "WHEEL":
                    text = data.decode()
                    text = re.sub(
                        r"^Root-Is-Purelib: .*$", "Root-Is-Purelib: true", text, flags=re.M
                    )
                    text = re.sub(r"^Tag: .*$", "Tag: py3-none-any", text, flags=re.M)
                    data = text.encode()
                elif name == info + "top_level.txt":
                    data = b"detectron2\n"
                elif name == info + "RECORD":
                    # Drop removed files; WHEEL/top_level changed, so their hashes are dropped too
                    # (the RECORD spec allows empty hash fields).
                    lines = []
                    for line in data.decode().splitlines():
                        path = line.split(",", 1)[0]
                        if _dropped(path):
                            continue
                        if path in (info + "WHEEL", info + "top_level.txt"):
                            line = f"{path},,"
                        lines.append(line)
                    data = ("\n".join(lines) + "\n").encode()
                zout.writestr(zin.getinfo(name), data)
    os.replace(tmp, dst)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", help="the downloaded sal_detectron2-*-cp310-*.whl")
    parser.add_argument("out_dir", help="folder for the py3-none-any wheel")
    args = parser.parse_args()
    if not os.path.isfile(args.wheel):
        sys.exit(f"error: {args.wheel}: no such file")
    os.makedirs(args.out_dir, exist_ok=True)
    print(repack(args.wheel, args.out_dir))


if __name__ == "__main__":
    main()
