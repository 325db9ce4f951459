"""Image files checked before decoding: a truncated JPEG must not become a half-grey image.

``cv2.imread`` decodes a JPEG cut short without an error (libjpeg only prints "Premature end of
JPEG file" and fills the rest with grey), so masks made from it look valid and are wrong. The
check here reads the file's structure, not its pixels: a JPEG is complete when an EOI marker
follows its first scan (``FFD9`` cannot occur inside entropy-coded data, where ``FF`` is stuffed),
a PNG when its chunks are whole up to ``IEND``. Other formats are left to their decoder.

Corrupt JPEG scan data is decoded without an error as well (libjpeg prints "Corrupt JPEG data"
naming no file and fills in garbage). Inside entropy-coded data an ``FF`` byte is followed only
by a stuffed ``00`` or a restart marker ``D0``-``D7`` (in order ``D0, D1, ..., D7, D0``), and
between the scans of a progressive JPEG only by table, restart-interval, comment, APPn or
start-of-scan segments: any other marker, or a restart out of order, is corruption. Randomised
data breaks this within a few hundred bytes (an ``FF`` every 256 bytes, 8 of 256 next bytes
allowed); a corruption of a few bytes that keeps the markers valid is left to the decoder.
Plain Python and OpenCV, so pseudo-label workers can use it.
"""

import os
import re
from typing import Any, Tuple

import cv2
import numpy as np

__all__ = ["check_image_file", "image_size", "read_image_bgr"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# An FF (after any fill FFs) that is not a stuffed 00: a marker, inside or between scans.
_SCAN_MARKER = re.compile(rb"\xff+[^\x00\xff]")
# Segments allowed between scans: DHT, DAC, DQT, DNL, DRI, APPn, COM; SOS starts the next scan.
_BETWEEN_SCANS = frozenset([0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)])


def _jpeg_problem(data: bytes) -> str:
    """Why the JPEG ``data`` is incomplete, or ``""`` (markers walked up to the first scan)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return f"corrupt (no JPEG marker at byte {i})"
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return "no image data (end marker before any scan)"
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data, then (more scans and) EOI
            return _scan_problem(data, i + 2 + length)
        i += 2 + length
    return "truncated (file ends before the image data)"


def _scan_problem(data: bytes, i: int) -> str:
    """Why the JPEG's image data from byte ``i`` (its first scan) on is corrupt or incomplete,
    or ``""`` (markers checked up to EOI, module docstring)."""
    next_restart = 0xD0
    while True:
        found = _SCAN_MARKER.search(data, i)
        if found is None:
            return "truncated (no end-of-image marker after the image data)"
        at, marker = found.end() - 2, data[found.end() - 1]
        if marker == 0xD9:
            return ""
        if 0xD0 <= marker <= 0xD7:
            if marker != next_restart:
                return (
                    f"corrupt image data (restart marker {marker - 0xD0} at byte {at}, "
                    f"expected {next_restart - 0xD0})"
                )
            next_restart = 0xD0 + (marker - 0xD0 + 1) % 8
            i = at + 2
            continue
        if marker not in _BETWEEN_SCANS and marker != 0xDA:
            return f"corrupt image data (marker FF{marker:02X} inside it at byte {at})"
        if at + 4 > len(data):
            return "truncated (file ends in a segment between scans)"
        next_restart = 0xD0 if marker == 0xDA else next_restart
        i = at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")


def _png_problem(data: bytes) -> str:
    """Why the PNG ``data`` is incomplete, or ``""`` (chunks walked up to ``IEND``)."""
    i, n = len(_PNG_SIGNATURE), len(data)
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        if not data[i + 4 : i + 8].isalpha():
            return f"corrupt (no PNG chunk at byte {i})"
        end = i + 12 + length  # length, type, data, CRC
        if end > n:
            return f"truncated (chunk {data[i + 4 : i + 8]!r} at byte {i} is cut short)"
        if data[i + 4 : i + 8] == b"IEND":
            return ""
        i = end
    return "truncated (no IEND chunk)"


def check_image_file(path: str, where: str = "") -> None:
    """Raise if the image file ``path`` is missing, empty, or a truncated JPEG / PNG.

    Args:
        where: how messages name the file (e.g. ``"image 'a.jpg' (image_id=3)"``); default the
            path. Raises ``FileNotFoundError`` (missing) or ``ValueError`` (the problem).
    """
    where = where or f"image {path!r}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot read {where}: file not found")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError(f"cannot read {where}: empty file (0 bytes)")
    if data[:2] == b"\xff\xd8":
        problem = _jpeg_problem(data)
    elif data[:8] == _PNG_SIGNATURE:
        problem = _png_problem(data)
    else:
        problem = ""
    if problem:
        raise ValueError(f"cannot read {where}: {problem}; re-create or re-encode the file")


def read_image_bgr(file_name: str, height: int, width: int, image_id: Any = None) -> np.ndarray:
    """The image ``file_name`` as ``(H, W, 3)`` uint8 BGR (grayscale replicated, alpha dropped
    by OpenCV), checked first (:func:`check_image_file`).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file (and ``image_id``) when it is
    missing, empty, truncated, unreadable, or not ``height`` x ``width`` as annotated.
    """
    where = f"image {file_name!r}" + (f" (image_id={image_id!r})" if image_id is not None else "")
    check_image_file(file_name, where)
    image = cv2.imread(file_name, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {where}: not a readable image file (corrupt?)")
    if image.shape[:2] != (height, width):
        raise ValueError(
            f"{where} is {image.shape[1]}x{image.shape[0]} but annotated as {width}x{height}"
        )
    return image


# EXIF orientations that turn the stored image by 90 degrees (decoders apply them, as OpenCV's
# imread and Detectron2's read_image do).
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


def image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of the image file ``path`` as decoders return it (EXIF orientation
    applied), read from its header only (PIL, lazily: no pixel is decoded). Raises ``ValueError``
    naming ``path`` when it is no image file PIL knows."""
    from PIL import Image  # here: workers that never ask for a size do not import PIL

    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = (
                im.getexif().get(0x0112) if im.format in ("JPEG", "TIFF", "WEBP") else None
            )
    except OSError as e:
        raise ValueError(f"{path}: not an image file ({e})") from e
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width
