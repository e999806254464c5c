"""Image loading: PNG/JPEG/DICOM, windowing, MONOCHROME1, frames, size and bomb guards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmllm.errors import DicomError, ImageError, ImageNotFoundError, ImageTooLargeError
from medmllm.models.imaging import load_image
from tests.models.dicom_fixtures import write_dicom


def test_png_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(gray)
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(rgba)
    g = load_image(gray)
    a = load_image(rgba)
    assert g.mode == a.mode == "RGB"
    assert np.asarray(g)[0, 0].tolist() == [100, 100, 100]
    assert np.asarray(a)[0, 0].tolist() == [0, 0, 0]  # transparent → composited on black


def test_jpeg_and_16bit_png(tmp_path: Path) -> None:
    jpg = tmp_path / "x.jpg"
    Image.new("RGB", (10, 6), (10, 200, 30)).save(jpg)
    assert load_image(jpg).size == (10, 6)
    png16 = tmp_path / "x16.png"
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(png16)
    arr = np.asarray(load_image(png16))
    assert arr.max() == 255 and arr.min() == 0


def test_dicom_rescale_and_window(tmp_path: Path) -> None:
    raw = np.array([[0, 1000], [1040, 2000]], dtype=np.uint16)
    # HU = raw - 1024; window 40/400 (soft tissue): HU -160 → 0, HU 16 → ~140, HU 240+ → 255
    path = write_dicom(tmp_path / "ct.dcm", raw, slope=1, intercept=-1024, window=(40, 400))
    arr = np.asarray(load_image(path))[:, :, 0]
    assert arr[0, 0] == 0 and arr[1, 1] == 255
    assert 100 < arr[1, 0] < 150  # HU 16 sits just below the window centre


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    raw = np.array([[0, 4000]], dtype=np.uint16)
    m2 = np.asarray(load_image(write_dicom(tmp_path / "m2.dcm", raw)))[0, :, 0]
    m1 = np.asarray(load_image(write_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1")))
    assert m2.tolist() == [0, 255]
    assert m1[0, :, 0].tolist() == [255, 0]


def test_dicom_multiframe_choice(tmp_path: Path) -> None:
    frames = np.stack([np.full((4, 4), v, np.uint16) for v in (0, 100, 200)])
    frames[:, 0, 0] = 0  # every frame spans 0..v so min-max scaling keeps a gradient
    frames[:, 0, 1] = 300
    path = write_dicom(tmp_path / "mf.dcm", frames)
    middle = np.asarray(load_image(path))[1, 1, 0]
    first = np.asarray(load_image(path, frame=0))[1, 1, 0]
    assert first == 0 and middle == 85
    with pytest.raises(DicomError, match="frame 7"):
        load_image(path, frame=7)


def test_dicom_without_pixels(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "sr.dcm", with_pixels=False)
    with pytest.raises(DicomError, match="no pixel data"):
        load_image(path)


def test_dicom_unsupported_transfer_syntax(tmp_path: Path) -> None:
    # JPEG 2000 declared, raw bytes stored: no installed decoder can read it
    path = write_dicom(tmp_path / "j2k.dcm", transfer_syntax="1.2.840.10008.1.2.4.90")
    with pytest.raises(DicomError, match="transfer syntax"):
        load_image(path)


def test_corrupt_png_and_jpeg(tmp_path: Path) -> None:
    for name in ("bad.png", "bad.jpg"):
        bad = tmp_path / name
        bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage" if name.endswith("png") else b"\xff\xd8 junk")
        with pytest.raises(ImageError, match="corrupt"):
            load_image(bad)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_100_megapixel_image_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (10_000, 10_000)).save(big)  # 100 MP, compresses to ~100 kB
    with pytest.raises(ImageTooLargeError, match=r"megapixels|decompression bomb"):
        load_image(big)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    # A hand-made PNG header claiming 60000x60000 pixels with almost no data behind it.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        load_image(bomb)


def test_dicom_pixel_limit(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "s.dcm")
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=100)
