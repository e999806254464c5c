"""Synthetic DICOM files written with pydicom (random pixels, no real patients)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    with_pixels: bool = True,
    transfer_syntax: str | None = None,
) -> Path:
    """Write a minimal CT-like DICOM; ``pixels`` is HxW or FxHxW uint16/int16."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    if pixels is None:
        pixels = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 4) % 4096
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Synthetic^Phantom"
    ds.Modality = "CT"
    if with_pixels:
        frames = pixels.shape[0] if pixels.ndim == 3 else 1
        ds.Rows, ds.Columns = pixels.shape[-2:]
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
        if transfer_syntax is None:
            ds.PixelData = pixels.tobytes()
        else:  # a compressed syntax: wrap the (not really compressed) bytes as one fragment
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([pixels.tobytes()])
            ds["PixelData"].VR = "OB"
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.save_as(path, enforce_file_format=True)
    return path
