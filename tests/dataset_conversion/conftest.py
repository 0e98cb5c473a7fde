"""Builders of small DICOM series, RTSTRUCTs, SEGs and VOC files for the converter tests."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# shared/ lies beside the repository (CI lays a copy beside its clone)
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "lung-pet-ct-dx-sample"
if not SAMPLE.is_dir():
    SAMPLE = Path("/work/shared/data/lung-pet-ct-dx-sample")


def write_series(
    folder: Path,
    volume: np.ndarray,
    spacing=(0.8, 0.8, 2.5),
    origin=(-30.0, -20.0, -100.0),
    iop=(1, 0, 0, 0, 1, 0),
    patient="P1",
    modality="CT",
    description="CT chest",
    series_number=2,
    study_uid=None,
    positions_z: list[float] | None = None,
    frame_uid=None,
) -> list[Dataset]:
    """Write ``volume`` ([z, rows, cols], HU) as a single-frame DICOM series; returns the datasets in z order.

    Files are named and numbered in *reverse* z order so that nothing may rely on file or
    InstanceNumber order. ``spacing`` is (column spacing, row spacing, slice spacing).
    ``positions_z`` overrides the slice offsets along the normal (to build gaps or duplicates).
    """
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    series_uid, study_uid, frame_uid = (
        generate_uid(),
        study_uid or generate_uid(),
        frame_uid or generate_uid(),
    )
    n = volume.shape[0]
    offsets = positions_z if positions_z is not None else [i * spacing[2] for i in range(n)]
    out = []
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study_uid,
            series_uid,
            frame_uid,
        )
        ds.PatientID, ds.PatientName = patient, f"{patient}^"
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.StudyDate = ds.SeriesDate = datetime.date(2020, 1, 1).strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, description, series_number
        ds.Manufacturer = "test"
        ds.InstanceNumber = n - i
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [
            float(v) for v in np.asarray(origin, float) + offsets[i] * normal
        ]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing, column spacing
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PositionReferenceIndicator = ""
        ds.PixelData = np.ascontiguousarray(volume[i].astype(np.int16)).tobytes()
        ds.save_as(folder / f"1-{n - i:02d}.dcm", enforce_file_format=True)
        out.append(ds)
    return out


def blob_volume(
    shape=(12, 40, 48), centre=(6, 20, 26), radius=(3, 7, 9)
) -> tuple[np.ndarray, np.ndarray]:
    """A CT (HU) with a bright ellipsoid tumour in lung-like background, and the tumour mask."""
    zz, yy, xx = np.indices(shape)
    mask = (
        ((zz - centre[0]) / radius[0]) ** 2
        + ((yy - centre[1]) / radius[1]) ** 2
        + ((xx - centre[2]) / radius[2]) ** 2
    ) <= 1
    ct = np.full(shape, -800, np.int16)
    ct[mask] = 40
    return ct, mask.astype(np.uint8)


def write_rtstruct(series_folder: Path, rois: dict[str, np.ndarray], path: Path) -> None:
    """An RTSTRUCT written by rt-utils from [z, rows, cols] masks (z in the series' position order)."""
    from rt_utils import RTStructBuilder

    rt = RTStructBuilder.create_new(dicom_series_path=str(series_folder))
    for name, mask in rois.items():
        # rt-utils stacks slices by ascending position along the normal, as write_series numbers them
        rt.add_roi(mask=np.moveaxis(mask.astype(bool), 0, 2), name=name)
    rt.save(str(path))


def write_seg(
    series: list[Dataset],
    segments: dict[str, np.ndarray],
    path: Path,
    property_type: str = "Neoplasm",
) -> Path:
    """A DICOM-SEG written by highdicom; one segment per entry ([z, rows, cols] masks in z order)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descs = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=getattr(codes.SCT, property_type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i, label in enumerate(segments)
    ]
    pixels = np.stack([m.astype(bool) for m in segments.values()], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=series,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs,
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(path)
    return path


def write_voc(
    path: Path, boxes: list[tuple[str, int, int, int, int]], width=512, height=512
) -> Path:
    objects = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<annotation verified="no"><folder>Unknow</folder><size><width>{width}</width>'
        f"<height>{height}</height><depth>1</depth></size>{objects}</annotation>"
    )
    return path


@pytest.fixture(scope="session")
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip("shared Lung-PET-CT-Dx sample not available")
    return SAMPLE


class Builders:
    """The builders above, handed to tests through the ``build`` fixture (tests never import conftest)."""

    write_series = staticmethod(write_series)
    blob_volume = staticmethod(blob_volume)
    write_rtstruct = staticmethod(write_rtstruct)
    write_seg = staticmethod(write_seg)
    write_voc = staticmethod(write_voc)


@pytest.fixture
def build() -> type[Builders]:
    return Builders
