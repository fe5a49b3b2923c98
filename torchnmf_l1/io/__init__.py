"""Readers, writers and plots for the command line and notebooks (no algorithm lives here)."""

from .readers import (
    DataError,
    Dataset,
    cube_to_matrix,
    list_variables,
    load_data,
    load_tensor,
    matrix_to_cube,
    read_envi,
    read_image_folder,
    read_mat,
    read_mtx,
    read_npy,
    write_envi,
)

__all__ = [
    "DataError",
    "Dataset",
    "cube_to_matrix",
    "list_variables",
    "load_data",
    "load_tensor",
    "matrix_to_cube",
    "read_envi",
    "read_image_folder",
    "read_mat",
    "read_mtx",
    "read_npy",
    "write_envi",
]
