"""Read PNG / JPEG / DICOM images into RGB ``PIL.Image`` objects, safely.

* PNG / JPEG (anything Pillow opens): grayscale, palette and RGBA are converted to RGB (alpha is
  composited on black). Corrupt files raise :class:`~medmllm.errors.ImageError`.
* DICOM (pydicom): the modality LUT (rescale slope / intercept), then the VOI LUT or window
  centre / width, then ``MONOCHROME1`` inversion; multi-frame files give one chosen frame (the
  middle one by default). A file without pixel data or with a transfer syntax that no installed
  decoder handles raises :class:`~medmllm.errors.DicomError`.
* Size: the pixel count is read from the header *before* decoding, so a 100-megapixel image or a
  decompression bomb (a tiny file claiming a huge canvas) is refused without allocating it
  (:class:`~medmllm.errors.ImageTooLargeError`).

Example:
    >>> from medmllm.models.imaging import load_image
    >>> img = load_image("scan.dcm", frame=0)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from medmllm.errors import DicomError, ImageError, ImageNotFoundError, ImageTooLargeError

# 40 megapixels: more than any radiograph (a 43x43 cm detector at 0.1 mm is ~18 MP), far below
# what would exhaust memory on a laptop.
MAX_PIXELS = 40_000_000
DICOM_MAGIC_OFFSET = 128


def is_dicom(path: Path) -> bool:
    """True if the file has the ``DICM`` preamble magic (or a ``.dcm`` suffix)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(DICOM_MAGIC_OFFSET)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _check_pixels(width: int, height: int, frames: int, limit: int, source: str) -> None:
    total = int(width) * int(height) * max(1, int(frames))
    if total > limit:
        raise ImageTooLargeError(
            f"image {source} claims {width}x{height}"
            + (f"x{frames} frames" if frames > 1 else "")
            + f" = {total / 1e6:.1f} megapixels, over the limit of {limit / 1e6:.1f} MP "
            "(refused before decoding: a huge image or a decompression bomb)",
            hint="downscale the image, or raise max_pixels if it is genuine",
        )


def load_image(
    image: str | Path | Image.Image | np.ndarray[Any, Any],
    *,
    frame: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Load any supported image as an RGB ``PIL.Image``.

    Args:
        image: a path (PNG, JPEG, DICOM, …), a PIL image or a HxW / HxWxC array.
        frame: frame index of a multi-frame DICOM (default: the middle frame).
        max_pixels: refuse images with more pixels than this (checked before decoding).

    Raises:
        ImageNotFoundError, ImageError, DicomError, ImageTooLargeError.
    """
    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, 1, max_pixels, "<PIL image>")
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        h, w = image.shape[:2]
        _check_pixels(w, h, 1, max_pixels, "<array>")
        return to_rgb(Image.fromarray(_to_uint8(image.astype(np.float64))))
    path = Path(image).expanduser()
    if not path.is_file():
        raise ImageNotFoundError(
            f"image {str(path)!r} does not exist", hint="check the path passed with --image"
        )
    if is_dicom(path):
        return load_dicom(path, frame=frame, max_pixels=max_pixels)
    return _load_raster(path, max_pixels)


def _load_raster(path: Path, max_pixels: int) -> Image.Image:
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
            _check_pixels(img.width, img.height, 1, max_pixels, repr(str(path)))
            img.load()
    except ImageTooLargeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"image {str(path)!r} looks like a decompression bomb: {exc}",
            hint="downscale the image",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"image {str(path)!r} is corrupt or not an image: {exc}",
            hint="pass a valid PNG, JPEG or DICOM file",
        ) from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale / palette / 16-bit / RGBA → 8-bit RGB (alpha composited on black)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img, dtype=np.float64))).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _to_uint8(pixels: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Min–max scale any numeric array to uint8 (a constant image becomes all zeros)."""
    if pixels.dtype == np.uint8:
        return pixels
    arr = np.asarray(pixels, dtype=np.float64)
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip((arr - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def load_dicom(
    path: str | Path, *, frame: int | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Read one frame of a DICOM file as display-ready RGB (see the module docstring)."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as exc:  # pragma: no cover - core dependency
        from medmllm.errors import MissingDependencyError

        raise MissingDependencyError(
            f"reading DICOM needs pydicom ({exc})", hint="pip install pydicom"
        ) from None
    path = Path(path)
    source = repr(str(path))
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as exc:
        raise DicomError(
            f"DICOM file {source} could not be parsed: {exc}", hint="pass a valid DICOM file"
        ) from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError(
            f"DICOM file {source} has no pixel data (SOP class "
            f"{getattr(ds, 'SOPClassUID', 'unknown')}: a report or structured document?)",
            hint="pass an image DICOM (CT, MR, CR/DX, US …)",
        )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_pixels(cols, rows, n_frames, max_pixels, source)
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown") if ds.file_meta else "unknown"
        name = getattr(syntax, "name", str(syntax))
        raise DicomError(
            f"DICOM file {source}: pixel data could not be decoded (transfer syntax "
            f"{syntax} = {name}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="install a decoder plugin (pylibjpeg / gdcm) or convert the file to explicit "
            "VR little endian (e.g. dcmdjpeg)",
        ) from None
    if n_frames > 1:
        chosen = n_frames // 2 if frame is None else frame
        if not 0 <= chosen < n_frames:
            raise DicomError(
                f"DICOM file {source} has {n_frames} frames; frame {frame} does not exist",
                hint=f"pass a frame index in 0..{n_frames - 1}",
            )
        pixels = pixels[chosen]
    elif frame not in (None, 0):
        raise DicomError(
            f"DICOM file {source} has a single frame; frame {frame} does not exist",
            hint="leave frame unset or pass 0",
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
        if "VOILUTSequence" in ds:
            arr = _to_uint8(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64))
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            arr = window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
        else:
            arr = _to_uint8(values)
        if photometric == "MONOCHROME1":  # high values are dark: invert for display
            arr = 255 - arr
        return Image.fromarray(arr).convert("RGB")
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422"):
        if photometric != "RGB":
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        return Image.fromarray(_to_uint8(np.asarray(pixels))).convert("RGB")
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        return Image.fromarray(_to_uint8(apply_color_lut(pixels, ds))).convert("RGB")
    raise DicomError(
        f"DICOM file {source} has unsupported photometric interpretation {photometric!r}",
        hint="convert it to MONOCHROME2 or RGB",
    )


def _first(value: Any) -> float:
    """WindowCenter / WindowWidth may be multi-valued: the first is the default view."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def window(values: np.ndarray[Any, Any], center: float, width: float) -> np.ndarray[Any, Any]:
    """DICOM linear windowing (PS3.3 C.11.2.1.2) of modality values to uint8."""
    if width < 1:
        raise DicomError(f"DICOM window width must be >= 1, got {width}")
    scaled = (values - (center - 0.5)) / (width - 1) + 0.5
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_data_url(image: str | Path | Image.Image | np.ndarray[Any, Any]) -> str:
    """Load any supported image (DICOM included) and encode it as a PNG ``data:`` URL."""
    import base64

    buf = io.BytesIO()
    load_image(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
