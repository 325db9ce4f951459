"""check_image_file: complete real JPEG / PNG files pass, truncated or empty ones are named."""

import pytest

from weaksup.utils.image_io import check_image_file

from conftest import shared_path


@pytest.mark.parametrize(
    "parts",
    [("ECSSD", "images", "0001.jpg"), ("PennFudanPed", "PNGImages", "FudanPed00001.png")],
)
def test_truncated_files_named(tmp_path, parts):
    src = shared_path(*parts)
    data = src.read_bytes()
    check_image_file(str(src))  # the complete file passes
    path = tmp_path / parts[-1]
    # cut in the headers, in the pixel data, and just before the end marker
    for cut in (20, len(data) // 2, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=rf"image '.*{parts[-1]}': truncated"):
            check_image_file(str(path))
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        check_image_file(str(path), f"image {str(path)!r} (image_id=7)")
    with pytest.raises(FileNotFoundError, match="missing.png.*not found"):
        check_image_file(str(tmp_path / "missing.png"))


def test_trailing_bytes_after_jpeg_end_accepted(tmp_path):
    data = shared_path("ECSSD", "images", "0002.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data + b"\x00" * 100)  # padding some writers add
    check_image_file(str(tmp_path / "a.jpg"))


def test_corrupt_png_named(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError, match="a.png': corrupt"):
        check_image_file(str(tmp_path / "a.png"))
