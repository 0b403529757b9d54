"""Tiny writers of 4D-STEM files in vendors' layouts, for the per-format reading tests.

Each writer follows the format's published layout (the fields RosettaSciIO's
reader looks at, and the ones the format's documentation requires), holding a
dataset made by :func:`disc_patterns`: a bright disc whose position on the
detector encodes the scan position, over a gradient that differs along the
detector's rows and columns, so a swapped, transposed or flipped read is caught.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

SCAN, DET = (4, 5), (16, 18)


def disc_centre(iy: int, ix: int) -> tuple[int, int]:
    """Where the disc of scan position ``(iy, ix)`` sits on the detector (row, col)."""
    return 3 + 3 * iy, 3 + 3 * ix


def disc_patterns(scan=SCAN, det=DET, dtype=np.uint16) -> np.ndarray:
    """``(scan_y, scan_x, det_y, det_x)`` patterns: disc of 1000 at :func:`disc_centre` + ``row + 2 * col``."""
    rows, cols = np.mgrid[:det[0], :det[1]]
    data = np.empty(tuple(scan) + tuple(det), dtype)
    for iy in range(scan[0]):
        for ix in range(scan[1]):
            cy, cx = disc_centre(iy, ix)
            disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= 2 ** 2
            data[iy, ix] = 1000 * disc + rows + 2 * cols
    return data


# -- MRC (MRC2014; Direct Electron movies) -----------------------------------------------------------------
def write_mrc(path: Path, frames: np.ndarray, *, pixel_angstrom: float = 1.0) -> None:
    """An MRC2014 image stack ``(n, ny, nx)``: a 1024-byte header, no extended header, then the frames."""
    n, ny, nx = frames.shape
    mode = {np.dtype(np.uint8): 0, np.dtype(np.int16): 1, np.dtype(np.float32): 2,
            np.dtype(np.uint16): 6}[frames.dtype]
    head = bytearray(1024)
    struct.pack_into("<10i", head, 0, nx, ny, n, mode, 0, 0, 0, nx, ny, n)   # NX NY NZ MODE NXSTART.. MX MY MZ
    struct.pack_into("<6f", head, 40, nx * pixel_angstrom, ny * pixel_angstrom, n * pixel_angstrom, 90, 90, 90)
    struct.pack_into("<3i", head, 64, 1, 2, 3)                                 # MAPC MAPR MAPS
    struct.pack_into("<3f", head, 76, frames.min(), frames.max(), frames.mean())
    struct.pack_into("<2i", head, 88, 0, 0)                                    # ISPG 0 (image stack), NSYMBT 0
    struct.pack_into("<i", head, 108, 20140)                                   # NVERSION
    head[208:212] = b"MAP "
    head[212:216] = bytes([0x44, 0x44, 0, 0])                                  # little-endian machine stamp
    with open(path, "wb") as fh:
        fh.write(bytes(head))
        fh.write(np.ascontiguousarray(frames).astype(frames.dtype.newbyteorder("<")).tobytes())


def write_de_movie(folder: Path, data: np.ndarray, *, stamp: str = "20260101_00042", serpentine: bool = False) -> Path:
    """A Direct Electron 4D-STEM movie: ``<date>_<n>_movie.mrc`` and ``<date>_<n>_info.txt``.

    The scan size is only in the info file ("Scan - Size X/Y"), as DE's software
    writes it. A raster scan stores the frames row by row; any other scan (here a
    serpentine: odd rows right to left) stores them in the order visited, with
    ``<date>_<n>_scan_coordinates.csv`` giving each frame's ``x,y``.
    """
    sy, sx, ny, nx = data.shape
    visits = [(iy, ix if not (serpentine and iy % 2) else sx - 1 - ix) for iy in range(sy) for ix in range(sx)]
    movie = folder / f"{stamp}_movie.mrc"
    write_mrc(movie, np.stack([data[iy, ix] for iy, ix in visits]))
    info = {"Instrument Project TEMorSTEM Mode": "1", "Scan - Enable": "Enable",
            "Scan - Type": "Serpentine" if serpentine else "Raster",
            "Scan - Size X": str(sx), "Scan - Size Y": str(sy), "Image Size X (pixels)": str(nx),
            "Image Size Y (pixels)": str(ny), "Camera Model": "DE-16"}
    (folder / f"{stamp}_info.txt").write_text("".join(f"{k} = {v}\n" for k, v in info.items()))
    if serpentine:
        (folder / f"{stamp}_scan_coordinates.csv").write_text("".join(f"{ix},{iy}\n" for iy, ix in visits))
    return movie


# -- py4DSTEM (EMD 1.0) -----------------------------------------------------------------------------------------
def write_py4dstem(path: Path, data: np.ndarray, *, step_angstrom: float = 20.0, q_step: float = 0.01) -> None:
    """An EMD 1.0 file as py4DSTEM saves a DataCube: ``<root>/datacube/data`` ``(Rx, Ry, Qx, Qy)`` and ``dim0..dim3``.

    Each ``dim`` holds the first two coordinates of its axis (a linear axis),
    with ``name`` and ``units`` attributes.
    """
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update({"emd_group_type": "file", "version_major": 1, "version_minor": 0, "version_release": 0})
        root = f.create_group("experiment_root")
        root.attrs["emd_group_type"] = "root"
        cube = root.create_group("datacube")
        cube.attrs.update({"emd_group_type": "array", "python_class": "DataCube"})
        cube.create_dataset("data", data=data)
        for i, (name, units, step) in enumerate((("Rx", "A", step_angstrom), ("Ry", "A", step_angstrom),
                                                 ("Qx", "A^-1", q_step), ("Qy", "A^-1", q_step))):
            dim = cube.create_dataset(f"dim{i}", data=np.array([0.0, step]))
            dim.attrs.update({"name": name, "units": units})


# -- TIA .ser (FEI) -------------------------------------------------------------------------------------
def write_ser(path: Path, data: np.ndarray, *, step_m: float = 1e-9) -> None:
    """A TIA series file of 2D elements over a 2D scan (SeriesVersion 0x0210, 32-bit offsets).

    Header, two dimension records (x scanned fastest, then y), the data and tag
    offset arrays, then each element: its image header and pixels (rows stored
    bottom-up, x fastest) followed by its position tag.
    """
    sy, sx, ny, nx = data.shape
    n = sy * sx
    dtype_id = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2, np.dtype(np.uint32): 3,
                np.dtype(np.float32): 7}[data.dtype]

    def dimension(size, delta, description, units):
        d, u = description.encode(), units.encode()
        return (struct.pack("<Iddi", size, 0.0, delta, 0) + struct.pack("<I", len(d)) + d
                + struct.pack("<I", len(u)) + u)

    dims = dimension(sx, step_m, "Scan X", "meters") + dimension(sy, step_m, "Scan Y", "meters")
    offsets_at = 30 + len(dims)
    first = offsets_at + 8 * n
    image_head = 8 + 8 + 4 + 8 + 8 + 4 + 2 + 4 + 4
    element = image_head + nx * ny * data.dtype.itemsize
    tag = 2 + 2 + 4 + 8 + 8
    data_offsets = [first + i * (element + tag) for i in range(n)]
    tag_offsets = [o + element for o in data_offsets]
    with open(path, "wb") as fh:
        fh.write(struct.pack("<HHHIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4142, n, n))
        fh.write(struct.pack("<II", offsets_at, 2))                      # OffsetArrayOffset, NumberDimensions
        fh.write(dims)
        fh.write(struct.pack(f"<{n}I", *data_offsets) + struct.pack(f"<{n}I", *tag_offsets))
        for i in range(n):
            iy, ix = divmod(i, sx)
            fh.write(struct.pack("<ddiddiHII", 0.0, 1e8, 0, 0.0, 1e8, 0, dtype_id, nx, ny))
            fh.write(np.ascontiguousarray(data[iy, ix, ::-1]).astype(data.dtype.newbyteorder("<")).tobytes())
            fh.write(struct.pack("<HHIdd", 0x4142, 0, 0, ix * step_m, iy * step_m))


# -- Velox EMD (Thermo Fisher) ----------------------------------------------------------------------------
def _json_column(meta: dict, n: int) -> np.ndarray:
    """Velox keeps each frame's metadata as a column of UTF-8 JSON bytes, zero-padded."""
    raw = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    column = np.zeros((len(raw) + 16, n), np.uint8)
    column[:len(raw)] = raw[:, None]
    return column


def write_velox(path: Path, frames: np.ndarray, *, pixel_m: float = 1e-3) -> None:
    """A Velox EMD file holding one camera image series ``(n, ny, nx)``.

    ``/Version`` (JSON: format Velox, version 11) and ``/Data/Image/<uuid>/Data``
    stored ``(ny, nx, n)``, one chunk per frame, with ``Metadata`` (JSON per frame).
    """
    import h5py

    n, ny, nx = frames.shape
    meta = {
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1767225600"}},
        "BinaryResult": {"Detector": "BM-Ceta", "DetectorIndex": "0", "PixelSize": {"width": str(pixel_m), "height": str(pixel_m)},
                         "PixelUnitX": "m", "PixelUnitY": "m", "Offset": {"x": "0", "y": "0"}},
        "Detectors": {"Detector-0": {"DetectorName": "BM-Ceta", "DetectorType": "ImagingDetector",
                                     "ExposureTime": "0.01"}},
        "Optics": {"AccelerationVoltage": "300000", "CameraLength": "0.1"},
        "Scan": {},
        "Stage": {"AlphaTilt": "0", "BetaTilt": "0", "Position": {"x": "0", "y": "0", "z": "0"}},
        "CustomProperties": {},
    }
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": "11"}).encode()]))
        g = f.create_group("Data/Image/6f1c2d3e4a5b46c7a8b9c0d1e2f3a4b5")
        g.create_dataset("Data", data=np.ascontiguousarray(frames.transpose(1, 2, 0)), chunks=(ny, nx, 1))
        g.create_dataset("Metadata", data=_json_column(meta, n))


# -- NanoMegas TopSpin .app5 -----------------------------------------------------------------------------
_APP5_GUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def write_app5(path: Path, data: np.ndarray, *, step_m: float = 2e-9, k_scale: float = 0.25) -> None:
    """A single-experiment TopSpin file: XML ``Metadata`` at the root and one GUID group of frames.

    The GUID group holds one group per scan position, numbered in raster order
    (x fastest), each with its pattern ``Data`` (contiguous, so it can be
    memory-mapped) and an XML ``Metadata`` giving the beam position in metres;
    the first position's XML also carries the detector calibration.
    """
    import h5py

    sy, sx = data.shape[:2]
    axis = ("<{0}><Offset>0</Offset><Scale>{1}</Scale>"
            "<Unit><Kind>Angle</Kind><Symbol>mrad</Symbol></Unit></{0}>")
    calibration = "<Calibration>" + axis.format("AxisY", k_scale) + axis.format("AxisX", k_scale) + "</Calibration>"
    with h5py.File(path, "w") as f:
        root = ("<Experiment><Id>" + _APP5_GUID + "</Id><Title>disc scan</Title>"
                "<ProcedureName>Precession 4D-STEM</ProcedureName></Experiment>")
        f.create_dataset("Metadata", data=np.bytes_(root.encode()))
        g = f.create_group(_APP5_GUID)
        for i in range(sy * sx):
            iy, ix = divmod(i, sx)
            point = g.create_group(str(i))
            point.create_dataset("Data", data=data[iy, ix])
            where = (f"<Beam><Probe><Name>Position</Name><Position><X>{ix * step_m!r}</X><Y>{iy * step_m!r}</Y>"
                     "</Position></Probe></Beam>")
            point.create_dataset("Metadata", data=np.bytes_(
                ("<Point>" + (calibration if i == 0 else "<Calibration/>") + where + "</Point>").encode()))


# -- Gatan DigitalMicrograph .dm4 / .dm3 ------------------------------------------------------------------------
_DM_TYPES = {np.dtype(np.int16): (1, 2), np.dtype(np.float32): (2, 6), np.dtype(np.uint8): (6, 10),
             np.dtype(np.int32): (7, 3), np.dtype(np.uint16): (10, 4), np.dtype(np.uint32): (11, 5)}


class _DMTags:
    """DM's tag tree, big-endian structure: counts and lengths 8 bytes wide in DM4, 4 in DM3.

    A DM4 tag also gives the length of what follows its name (DM3 tags do not).
    """

    def __init__(self, version: int):
        self.version, self.word = version, ">Q" if version == 4 else ">I"

    def _count(self, *values: int) -> bytes:
        return b"".join(struct.pack(self.word, v) for v in values)

    def tag(self, kind: int, name: str, body: bytes) -> bytes:  # kind 20: group, 21: data
        label = name.encode("latin-1")
        size = struct.pack(">Q", len(body)) if self.version == 4 else b""
        return bytes([kind]) + struct.pack(">H", len(label)) + label + size + body

    def group_body(self, children: list[bytes]) -> bytes:
        return bytes([0, 0]) + self._count(len(children)) + b"".join(children)  # not sorted, closed

    def group(self, name: str, children: list[bytes]) -> bytes:
        return self.tag(20, name, self.group_body(children))

    def data(self, name: str, info: list[int], payload: bytes) -> bytes:
        return self.tag(21, name, b"%%%%" + self._count(len(info), *info) + payload)

    def long(self, name: str, value: int) -> bytes:
        return self.data(name, [3], struct.pack("<i", value))

    def float(self, name: str, value: float) -> bytes:
        return self.data(name, [6], struct.pack("<f", value))

    def text(self, name: str, text: str) -> bytes:  # DM keeps text as an array of 16-bit characters
        return self.data(name, [20, 4, len(text)], text.encode("utf-16-le"))


def write_dm(path: Path, data: np.ndarray, dims: list[tuple[int, float, str]], *, version: int = 4) -> None:
    """A DM4 (or DM3) file holding one image; ``dims`` is DM's dimension list (size, scale, units), fastest first.

    ``data`` is the C-ordered array whose shape is ``dims`` reversed (DM counts
    dimensions from the fastest, x). Big-endian tag structure, little-endian values.
    """
    assert tuple(data.shape) == tuple(d[0] for d in dims[::-1])
    t = _DMTags(version)
    data_type, element = _DM_TYPES[data.dtype]
    calibrations = t.group("Calibrations", [
        t.group("Brightness", [t.float("Origin", 0.0), t.float("Scale", 1.0), t.text("Units", "")]),
        t.group("Dimension", [t.group("", [t.float("Origin", 0.0), t.float("Scale", scale), t.text("Units", units)])
                              for _, scale, units in dims]),
        t.long("DisplayCalibratedUnits", 1),
    ])
    pixels = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes()
    image_data = t.group("ImageData", [
        calibrations,
        t.data("Data", [20, element, data.size], pixels),
        t.long("DataType", data_type),
        t.group("Dimensions", [t.long("", size) for size, _, _ in dims]),
        t.long("PixelDepth", data.dtype.itemsize),
    ])
    image = t.group("", [image_data, t.group("ImageTags", []), t.text("Name", path.stem)])
    body = t.group_body([t.group("ImageList", [image]), t.long("InImageMode", 1)]) + bytes(8)  # 8 zero bytes end it
    with open(path, "wb") as fh:  # version, length of what follows, 1 = values little-endian
        fh.write(struct.pack(">I", version) + t._count(len(body)) + struct.pack(">I", 1) + body)


# -- USID (pycroscopy) -----------------------------------------------------------------------------------------
def write_usid(path: Path, data: np.ndarray) -> None:
    """A Universal Spectroscopic and Imaging Data file: ``Raw_Data`` of shape (positions, spectroscopic values).

    The scan is two position dimensions (X fastest), the pattern two
    spectroscopic dimensions (U fastest); each dimension set is given by its
    ``*_Indices``/``*_Values`` datasets, referenced from the main dataset.
    """
    import h5py

    sy, sx, ny, nx = data.shape

    def ancillary(group, kind, sizes, labels, units):
        index = np.stack(np.unravel_index(np.arange(int(np.prod(sizes[::-1]))), sizes[::-1])[::-1], axis=1)
        made = {}
        for what, values in (("Indices", index.astype(np.uint32)), ("Values", index.astype(np.float32))):
            dset = group.create_dataset(f"{kind}_{what}", data=values if kind == "Position" else values.T)
            dset.attrs["labels"] = np.array(labels, dtype="S")
            dset.attrs["units"] = np.array(units, dtype="S")
            made[what] = dset
        return made

    with h5py.File(path, "w") as f:
        f.attrs["pyUSID_version"] = "0.0.12"
        g = f.create_group("Measurement_000/Channel_000")
        raw = g.create_dataset("Raw_Data", data=data.reshape(sy * sx, ny * nx))
        raw.attrs["quantity"], raw.attrs["units"] = "Intensity", "counts"
        for kind, sizes, labels, units in (("Position", (sx, sy), ["X", "Y"], ["nm", "nm"]),
                                           ("Spectroscopic", (nx, ny), ["U", "V"], ["1/nm", "1/nm"])):
            for what, dset in ancillary(g, kind, sizes, labels, units).items():
                raw.attrs[f"{kind}_{what}"] = dset.ref


def write_emi(path: Path, *, mode: str = "STEM nP SA Zoom Diffraction") -> None:
    """The TIA ``.emi`` beside ``<name>_1.ser``: binary, with each series' ``<ObjectInfo>`` XML inside.

    Its experimental description (the microscope mode) and acquisition info (a
    camera) tell diffraction patterns, in reciprocal units, from images.
    """
    def data(label, value, unit=""):
        return f"<Data><Label>{label}</Label><Value>{value}</Value><Unit>{unit}</Unit></Data>"

    info = ("<ObjectInfo><DisplayName>CCD Acquire</DisplayName><AcquireDate>Thu Jan 01 10:00:00 2026</AcquireDate>"
            "<AcquireInfo><CameraNamePath>BM-Ceta</CameraNamePath><DwellTimePath>0.01</DwellTimePath></AcquireInfo>"
            "<ExperimentalDescription><Root>" + data("Mode", mode) + data("High tension", "300", "kV")
            + "</Root></ExperimentalDescription></ObjectInfo>")
    path.write_bytes(b"\x00" * 64 + info.encode() + b"\x00" * 64)
