"""Data readers: NumPy, MATLAB (v5 and v7.3), Matrix Market, ENVI cubes, image folders.

Every reader returns a :class:`Dataset`: the data matrix ``X`` (features x samples, e.g.
bands x pixels, pixels x images, words x documents) as a NumPy array or a SciPy sparse
matrix, plus what the plots need to draw it back in its own shape (``image_shape`` and
``order`` of the pixels). Readers raise :class:`DataError` (a ``ValueError``) naming the
file and the problem; they never modify the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "load_data",
    "read_npy",
    "read_mat",
    "read_mtx",
    "read_envi",
    "write_envi",
    "read_image_folder",
    "load_tensor",
    "list_variables",
    "cube_to_matrix",
    "matrix_to_cube",
]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".tif", ".tiff", ".gif")


class DataError(ValueError):
    """A data file that cannot be read (missing, malformed, unsupported)."""


@dataclass
class Dataset:
    """A data matrix and how to draw it.

    Attributes
    ----------
    X : ndarray or scipy.sparse matrix, shape (m, n)
        Features x samples (bands x pixels for a cube, pixels x images for a folder).
    image_shape : (int, int), optional
        For a cube: the spatial shape (rows, cols) of the n pixels; for images: the
        (height, width) of each of the m-pixel columns.
    order : {"C", "F"}
        Order in which pixels were flattened into ``image_shape``.
    kind : str
        ``"matrix"``, ``"cube"`` (columns are pixels) or ``"images"`` (columns are images).
    source : str
        File or folder read.
    meta : dict
        Anything else the reader found (wavelengths, variable name, file names).
    """

    X: object
    image_shape: tuple | None = None
    order: str = "C"
    kind: str = "matrix"
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        return tuple(self.X.shape)


# ---------------------------------------------------------------------------- cubes
def cube_to_matrix(cube: np.ndarray, interleave: str = "bsq") -> np.ndarray:
    """Reshape a hyperspectral cube to a (bands x pixels) matrix, pixels in row-major order.

    Parameters
    ----------
    cube : ndarray
        ``(bands, rows, cols)`` for BSQ, ``(rows, bands, cols)`` for BIL,
        ``(rows, cols, bands)`` for BIP.
    interleave : {"bsq", "bil", "bip"}

    Returns
    -------
    ndarray, shape (bands, rows * cols)
        A view when the layout allows it (BSQ), otherwise a copy.
    """
    interleave = _check_interleave(interleave)
    if cube.ndim != 3:
        raise DataError(f"a cube must have 3 dimensions, got shape {cube.shape}")
    bsq = {"bsq": cube, "bil": cube.transpose(1, 0, 2), "bip": cube.transpose(2, 0, 1)}[interleave]
    bands, rows, cols = bsq.shape
    return bsq.reshape(bands, rows * cols)


def matrix_to_cube(X: np.ndarray, image_shape, *, order: str = "C") -> np.ndarray:
    """Inverse of :func:`cube_to_matrix`: (k x pixels) -> (k, rows, cols).

    ``order="F"`` reads pixels in column-major image order (MATLAB files such as Urban).
    """
    X = np.asarray(X)
    rows, cols = (int(s) for s in image_shape)
    if X.ndim == 1:
        X = X[None, :]
    if X.shape[1] != rows * cols:
        raise DataError(f"{X.shape[1]} pixels do not fill an image of shape {(rows, cols)}")
    if order not in ("C", "F"):
        raise DataError(f"order must be 'C' or 'F', got {order!r}")
    return np.stack([x.reshape(rows, cols, order=order) for x in X])


def _check_interleave(interleave: str) -> str:
    key = str(interleave).lower()
    if key not in ("bsq", "bil", "bip"):
        raise DataError(f"interleave must be one of 'bsq', 'bil', 'bip', got {interleave!r}")
    return key


# ---------------------------------------------------------------------------- ENVI
_ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}


def _parse_envi_header(path: Path) -> dict:
    text = path.read_text(errors="replace")
    if not text.lstrip().upper().startswith("ENVI"):
        raise DataError(f"{path}: not an ENVI header (it must start with 'ENVI')")
    header = {}
    for match in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, flags=re.M):
        key, value = match.group(1).strip().lower(), match.group(2).strip()
        if value.startswith("{"):
            value = [v.strip() for v in value[1:-1].split(",") if v.strip()]
        header[key] = value
    return header


def read_envi(path, *, mmap: bool = True) -> Dataset:
    """Read an ENVI cube (``.hdr`` plus raw file; BSQ, BIL or BIP), memory-mapped.

    ``path`` is the header or the raw file (the other is found next to it: same stem
    with ``.hdr``, or ``.img``/``.raw``/``.dat``/no suffix). Returns a (bands x pixels)
    matrix, pixels in row-major order, and ``image_shape = (lines, samples)``.
    """
    path = Path(path)
    hdr = path if path.suffix.lower() == ".hdr" else path.with_suffix(".hdr")
    if not hdr.exists() and path.suffix.lower() != ".hdr":
        hdr = Path(str(path) + ".hdr")
    if not hdr.exists():
        raise DataError(f"{path}: ENVI header not found (looked for {hdr})")
    header = _parse_envi_header(hdr)
    try:
        samples, lines, bands = (int(header[k]) for k in ("samples", "lines", "bands"))
        code = int(header.get("data type", 4))
        offset = int(header.get("header offset", 0))
        byte_order = int(header.get("byte order", 0))
    except KeyError as err:
        raise DataError(f"{hdr}: ENVI header lacks the key {err.args[0]!r}") from None
    except ValueError as err:
        raise DataError(f"{hdr}: malformed ENVI header ({err})") from None
    if code not in _ENVI_DTYPES:
        raise DataError(f"{hdr}: unsupported ENVI data type {code}; supported: {sorted(_ENVI_DTYPES)}")
    interleave = _check_interleave(header.get("interleave", "bsq"))
    dtype = np.dtype(_ENVI_DTYPES[code]).newbyteorder(">" if byte_order == 1 else "<")
    raw = None
    if path.suffix.lower() != ".hdr":
        raw = path
    else:
        for candidate in [hdr.with_suffix(s) for s in (".img", ".raw", ".dat", ".bsq", ".bil", ".bip", "")]:
            if candidate.exists() and candidate != hdr:
                raw = candidate
                break
    if raw is None or not raw.exists():
        raise DataError(f"{hdr}: raw data file not found next to the header")
    shape = {"bsq": (bands, lines, samples), "bil": (lines, bands, samples), "bip": (lines, samples, bands)}[interleave]
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if raw.stat().st_size < expected:
        raise DataError(f"{raw}: holds {raw.stat().st_size} bytes, the header describes {expected}")
    if mmap:
        cube = np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape)
    else:
        cube = np.fromfile(raw, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    meta = {"interleave": interleave, "header": header}
    if "wavelength" in header:
        try:
            meta["wavelength"] = [float(w) for w in header["wavelength"]]
        except ValueError:
            pass
    return Dataset(cube_to_matrix(cube, interleave), (lines, samples), "C", "cube", str(raw), meta)


def write_envi(path, cube: np.ndarray, *, interleave: str = "bsq") -> Path:
    """Write a (bands, rows, cols) cube as ENVI ``path`` (raw) + ``path.hdr``; returns the header path."""
    interleave = _check_interleave(interleave)
    cube = np.asarray(cube)
    bands, lines, samples = cube.shape
    codes = {np.dtype(v).newbyteorder("<").str: k for k, v in _ENVI_DTYPES.items()}
    code = codes.get(cube.dtype.newbyteorder("<").str)
    if code is None:
        raise DataError(f"ENVI cannot store dtype {cube.dtype}")
    layout = {"bsq": cube, "bil": cube.transpose(1, 0, 2), "bip": cube.transpose(1, 2, 0)}[interleave]
    path = Path(path)
    np.ascontiguousarray(layout, dtype=cube.dtype.newbyteorder("<")).tofile(path)
    hdr = path.with_suffix(".hdr")
    hdr.write_text(
        "ENVI\n"
        f"samples = {samples}\nlines = {lines}\nbands = {bands}\nheader offset = 0\n"
        f"file type = ENVI Standard\ndata type = {code}\ninterleave = {interleave}\nbyte order = 0\n"
    )
    return hdr


# ---------------------------------------------------------------------------- matrices
def read_npy(path, *, key: str | None = None) -> Dataset:
    """Read ``.npy`` (memory-mapped) or ``.npz`` (variable ``key``, or the only / largest one)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            X = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:  # an empty or truncated file: ValueError, EOFError, OSError
            raise DataError(f"{path}: not a readable .npy file ({type(err).__name__}: {err or 'empty file'})") from None
        if X.ndim != 2 or min(X.shape) < 1:
            raise DataError(f"{path}: holds an array of shape {X.shape}; a data matrix is 2-D and not empty")
        return Dataset(X, source=str(path))
    arrays = _read_npz(path)
    # a scipy.sparse.save_npz file
    if {"format", "shape", "data"} <= set(arrays):
        import scipy.sparse

        return Dataset(scipy.sparse.load_npz(path).tocsr(), source=str(path), meta={"variable": None})
    name, X = _pick_variable(arrays, key, path)
    return Dataset(X, source=str(path), meta={"variable": name})


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except Exception as err:  # truncated or not a zip: BadZipFile, ValueError, OSError, EOFError
        raise DataError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None


def _is_matrix(v) -> bool:
    """A data matrix (or cube): 2-D or 3-D, every dimension of size > 1 (not a vector or a scalar)."""
    shape = getattr(v, "shape", ())
    return len(shape) in (2, 3) and min(shape) > 1


def _pick_variable(arrays: dict, key, path):
    if key is not None:
        if key not in arrays:
            raise DataError(f"{path}: no variable {key!r}; variables: {sorted(arrays)}")
        if not _is_matrix(arrays[key]):
            raise DataError(f"{path}: variable {key!r} has shape {tuple(getattr(arrays[key], 'shape', ()))}, not a matrix")
        return key, arrays[key]
    candidates = {k: v for k, v in arrays.items() if not k.startswith("__") and _is_matrix(v)}
    if not candidates:
        shapes = {k: tuple(getattr(v, "shape", ())) for k, v in arrays.items() if not k.startswith("__")}
        raise DataError(f"{path}: no matrix (2-D, every dimension > 1) among the variables {shapes}")
    name = max(candidates, key=lambda k: int(np.prod(candidates[k].shape)))
    return name, candidates[name]


def read_mat(path, *, key: str | None = None) -> Dataset:
    """Read a MATLAB file: v5 through :func:`scipy.io.loadmat`, v7.3 (HDF5) through h5py.

    ``key`` names the variable; by default the largest 2-D (or 3-D) variable. Sparse
    matrices stay sparse. A 3-D array is treated as a cube (rows, cols, bands).
    """
    path = Path(path)
    name, X = _pick_variable(_mat_arrays(path), key, path)
    return _matrix_or_cube(X, path, name, order="F")


def _mat_arrays(path: Path) -> dict:
    """Every variable of a MATLAB file (v5 by scipy, v7.3 by h5py), arrays as MATLAB shapes them."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head[:128]:
        return _mat73_arrays(path)
    import scipy.io

    try:
        arrays = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types for malformed files
        raise DataError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err})") from None
    return {k: v for k, v in arrays.items() if not k.startswith("__")}


def _mat73_arrays(path: Path) -> dict:
    try:
        import h5py
    except ImportError:
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file: reading it needs h5py (pip install h5py)"
        ) from None
    import scipy.sparse

    try:
        with h5py.File(path, "r") as f:
            arrays = {}
            for k, v in f.items():
                if k.startswith("#"):
                    continue
                if isinstance(v, h5py.Group) and {"data", "ir", "jc"} <= set(v):
                    n_cols = len(v["jc"]) - 1
                    n_rows = int(v.attrs.get("MATLAB_sparse", max(v["ir"][()], default=-1) + 1))
                    # MATLAB stores sparse columns (CSC) of the matrix
                    arrays[k] = scipy.sparse.csc_matrix((v["data"][()], v["ir"][()], v["jc"][()]), shape=(n_rows, n_cols)).tocsr()
                elif isinstance(v, h5py.Dataset):
                    # HDF5 holds the transpose of the MATLAB array (column-major on disk)
                    arrays[k] = np.asarray(v[()]).T
    except (OSError, KeyError, ValueError) as err:  # truncated or corrupt HDF5
        raise DataError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({type(err).__name__}: {err})") from None
    return arrays


def _matrix_or_cube(X, path: Path, name: str, *, order: str) -> Dataset:
    if getattr(X, "ndim", 2) == 3:
        rows, cols, bands = X.shape
        # MATLAB cube (rows, cols, bands): bands x pixels in column-major pixel order
        return Dataset(X.reshape(rows * cols, bands, order="F").T, (rows, cols), "F", "cube", str(path), {"variable": name})
    return Dataset(X, source=str(path), meta={"variable": name}, order=order)


def read_mtx(path) -> Dataset:
    """Read a Matrix Market file (sparse coordinate -> CSR, dense array -> ndarray)."""
    import scipy.io
    import scipy.sparse

    path = Path(path)
    try:
        X = scipy.io.mmread(path)
    except Exception as err:
        raise DataError(f"{path}: not a readable Matrix Market file ({type(err).__name__}: {err})") from None
    if scipy.sparse.issparse(X):
        X = X.tocsr()
    return Dataset(X, source=str(path))


def read_image_folder(path, *, pattern: str | None = None) -> Dataset:
    """Read a folder of same-sized grey images into a (pixels x images) matrix in [0, 1].

    Needs Pillow (installed with matplotlib). Images are sorted by file name; colour
    images are converted to grey.
    """
    path = Path(path)
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{path}: reading an image folder needs Pillow (pip install pillow)") from None
    files = sorted(p for p in path.glob(pattern or "*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no image files ({', '.join(_IMAGE_SUFFIXES)}) in this folder")
    columns, shape = [], None
    for file in files:
        with Image.open(file) as img:
            a = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise DataError(f"{file}: image of shape {a.shape}, the first image has {shape}")
        columns.append(a.reshape(-1))
    return Dataset(np.stack(columns, axis=1), shape, "C", "images", str(path), {"files": [f.name for f in files]})


_READERS = {".npy": read_npy, ".npz": read_npy, ".mat": read_mat, ".mtx": read_mtx, ".hdr": read_envi}


def _arrays_of(path: Path) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return {"(array)": np.load(path, mmap_mode="r", allow_pickle=False)}
        except Exception as err:
            raise DataError(f"{path}: not a readable .npy file ({type(err).__name__}: {err or 'empty file'})") from None
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".mat":
        return _mat_arrays(path)
    raise DataError(f"{path}: variables are listed for .npy, .npz and .mat files, got {path.suffix!r}")


def list_variables(path) -> list[dict]:
    """The variables of a ``.npy`` / ``.npz`` / ``.mat`` file: name, shape, dtype, sparse."""
    import scipy.sparse

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    out = []
    for name, v in _arrays_of(path).items():
        out.append(dict(name=name, shape=list(getattr(v, "shape", ())), dtype=str(getattr(v, "dtype", type(v).__name__)),
                        sparse=bool(scipy.sparse.issparse(v))))
    return out


def load_tensor(path, *, key: str | None = None) -> np.ndarray:
    """The raw array of a ``.npy`` / ``.npz`` / ``.mat`` file (order >= 2), for the CP models.

    ``key`` names the variable; by default the one with most entries among those of
    at least 2 dimensions of size > 1. No reshaping (a 3-D array stays a 3-way tensor).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    arrays = {k: v for k, v in _arrays_of(path).items() if not k.startswith("__")}
    if key is not None:
        if key not in arrays:
            raise DataError(f"{path}: no variable {key!r}; variables: {sorted(arrays)}")
        candidates = {key: arrays[key]}
    else:
        candidates = {k: v for k, v in arrays.items() if sum(s > 1 for s in getattr(v, "shape", ())) >= 2}
    candidates = {k: v for k, v in candidates.items() if hasattr(v, "ndim") and not hasattr(v, "tocsr")}
    if not candidates:
        raise DataError(f"{path}: no dense array of order >= 2 found")
    name = max(candidates, key=lambda k: int(np.prod(candidates[k].shape)))
    T = np.asarray(candidates[name])
    if T.ndim < 2 or sum(s > 1 for s in T.shape) < 2:
        raise DataError(f"{path}: variable {name!r} has shape {T.shape}, not a tensor of order >= 2")
    return T


def load_data(path, *, key: str | None = None, image_shape=None, order: str | None = None) -> Dataset:
    """Read any supported file or folder, by suffix.

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz``, ``.mat``, ``.mtx``, ``.mtx.gz``, ENVI ``.hdr`` (or its raw
        file ``.img``/``.raw``/``.dat``), or a folder of images.
    key : str, optional
        Variable of a ``.npz`` / ``.mat`` file.
    image_shape : (int, int), optional
        Declare the spatial shape of the columns (e.g. ``(77, 77)`` for Urban); with
        ``order`` ("F" for MATLAB column-major pixels).

    Raises
    ------
    DataError
        Missing file, unknown suffix, unreadable content, or an ``image_shape`` that does
        not fit the data.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        dataset = read_image_folder(path)
    else:
        suffix = path.suffix.lower()
        if path.name.lower().endswith(".mtx.gz"):
            suffix = ".mtx"
        if suffix in (".img", ".raw", ".dat", ".bsq", ".bil", ".bip") or (suffix not in _READERS and path.with_suffix(".hdr").exists()):
            suffix = ".hdr"
        reader = _READERS.get(suffix)
        if reader is None:
            raise DataError(f"{path}: unknown file type {path.suffix!r}; supported: {sorted(_READERS)} and image folders")
        dataset = reader(path, key=key) if reader in (read_npy, read_mat) else reader(path)
        if key is not None and reader not in (read_npy, read_mat):
            raise DataError(f"{path}: key={key!r} only applies to .npz and .mat files")
    if image_shape is not None:
        rows, cols = (int(s) for s in image_shape)
        m, n = dataset.shape
        if rows * cols == n:
            dataset.kind = "cube"
        elif rows * cols == m:
            dataset.kind = "images"
        else:
            raise DataError(f"{path}: image_shape {tuple(image_shape)} fits neither {m} rows nor {n} columns")
        dataset.image_shape = (rows, cols)
    if order is not None:
        if order not in ("C", "F"):
            raise DataError(f"order must be 'C' or 'F', got {order!r}")
        dataset.order = order
    return dataset
