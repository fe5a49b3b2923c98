"""Readers round trip: what is written with numpy / scipy / h5py / Pillow is read back equal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from torchnmf_l1.io import DataError, cube_to_matrix, load_data, matrix_to_cube, write_envi

from conftest import SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_npy_npz_roundtrip(tmp_path, rng):
    X = rng.random((7, 5))
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(load_data(tmp_path / "x.npy").X, X)
    np.savez(tmp_path / "x.npz", small=np.ones((2, 2)), X=X)
    assert load_data(tmp_path / "x.npz").meta["variable"] == "X"  # the largest 2-D variable
    np.testing.assert_array_equal(load_data(tmp_path / "x.npz", key="small").X, np.ones((2, 2)))
    with pytest.raises(DataError, match="no variable 'nope'"):
        load_data(tmp_path / "x.npz", key="nope")
    S = scipy.sparse.random(6, 9, density=0.3, random_state=0, format="csr")
    scipy.sparse.save_npz(tmp_path / "s.npz", S)
    got = load_data(tmp_path / "s.npz").X
    assert scipy.sparse.issparse(got) and (got != S).nnz == 0


def test_mat_v5_and_mtx_roundtrip(tmp_path, rng):
    X = rng.random((4, 6))
    S = scipy.sparse.random(5, 8, density=0.4, random_state=1, format="csr")
    scipy.io.savemat(tmp_path / "a.mat", {"X": X, "S": S})
    np.testing.assert_array_equal(load_data(tmp_path / "a.mat", key="X").X, X)
    got = load_data(tmp_path / "a.mat", key="S").X
    assert scipy.sparse.issparse(got) and np.allclose(got.toarray(), S.toarray())
    scipy.io.mmwrite(tmp_path / "s.mtx", S)
    got = load_data(tmp_path / "s.mtx").X
    assert scipy.sparse.isspmatrix_csr(got) and np.allclose(got.toarray(), S.toarray())


def test_mat_v73_roundtrip(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    X = rng.random((4, 6))
    S = scipy.sparse.random(5, 8, density=0.4, random_state=2, format="csc")
    with h5py.File(tmp_path / "b.mat", "w", userblock_size=512) as f:
        f["X"] = X.T  # MATLAB writes the transpose (column-major)
        g = f.create_group("S")
        g["data"], g["ir"], g["jc"] = S.data, S.indices.astype(np.uint64), S.indptr.astype(np.uint64)
        g.attrs["MATLAB_sparse"] = 5
    with open(tmp_path / "b.mat", "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(128, b" "))
    np.testing.assert_array_equal(load_data(tmp_path / "b.mat", key="X").X, X)
    got = load_data(tmp_path / "b.mat", key="S").X
    np.testing.assert_allclose(got.toarray(), S.toarray())


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_envi_roundtrip_memory_mapped(tmp_path, rng, interleave):
    cube = rng.integers(0, 1000, size=(4, 3, 5)).astype(np.uint16)  # bands, rows, cols
    hdr = write_envi(tmp_path / "scene.img", cube, interleave=interleave)
    for path in (hdr, tmp_path / "scene.img"):
        ds = load_data(path)
        assert ds.kind == "cube" and ds.image_shape == (3, 5) and ds.shape == (4, 15)
        assert isinstance(ds.X.base, np.memmap) or isinstance(ds.X, np.memmap)
        np.testing.assert_array_equal(ds.X, cube.reshape(4, 15))
        np.testing.assert_array_equal(matrix_to_cube(ds.X, ds.image_shape, order=ds.order), cube)


def test_cube_reshape_brute_force(rng):
    cube = rng.random((2, 3, 4))  # bands, rows, cols
    M = cube_to_matrix(cube.transpose(1, 2, 0), "bip")
    for b in range(2):
        for i in range(3):
            for j in range(4):
                assert M[b, i * 4 + j] == cube[b, i, j]
    np.testing.assert_array_equal(matrix_to_cube(M, (3, 4)), cube)


def test_envi_errors(tmp_path):
    (tmp_path / "bad.hdr").write_text("ENVI\nsamples = 3\nlines = 2\n")
    (tmp_path / "bad.img").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="lacks the key 'bands'"):
        load_data(tmp_path / "bad.hdr")
    (tmp_path / "short.hdr").write_text("ENVI\nsamples = 3\nlines = 2\nbands = 2\ndata type = 4\n")
    (tmp_path / "short.img").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="holds 10 bytes"):
        load_data(tmp_path / "short.hdr")


def test_image_folder(tmp_path, rng):
    Image = pytest.importorskip("PIL.Image")
    imgs = rng.integers(0, 256, size=(3, 4, 5)).astype(np.uint8)
    for k, a in enumerate(imgs):
        Image.fromarray(a).save(tmp_path / f"face{k}.png")
    ds = load_data(tmp_path)
    assert ds.kind == "images" and ds.image_shape == (4, 5) and ds.shape == (20, 3)
    np.testing.assert_allclose(ds.X[:, 1].reshape(4, 5), imgs[1] / 255.0)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match="odd.png: image of shape"):
        load_data(tmp_path)


def test_missing_and_unknown(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(tmp_path / "nope.npy")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown file type '.csv'"):
        load_data(tmp_path / "x.csv")


def test_urban_pixels_are_column_major():
    path = SHARED_DATA / "urban_undersampled4.mat"
    if not path.exists():
        pytest.skip(f"{path} absent")
    ds = load_data(path, image_shape=(77, 77), order="F")
    assert ds.kind == "cube" and ds.shape == (162, 5929)
    cube = matrix_to_cube(ds.X[:1], ds.image_shape, order=ds.order)[0]
    # column-major: pixel k sits at row k % 77, column k // 77
    assert cube[5, 2] == ds.X[0, 2 * 77 + 5]


def test_mat_v73_without_h5py_names_the_package(tmp_path, monkeypatch):
    (tmp_path / "c.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" "))
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py now fails
    with pytest.raises(DataError, match=r"c.mat is a MATLAB v7.3 \(HDF5\) file: reading it needs h5py"):
        load_data(tmp_path / "c.mat")
