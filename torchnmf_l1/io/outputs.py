"""Writers of a run's results: factors (.npz with the config and version) and a JSON report."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["environment", "save_factors", "load_factors", "write_report", "atomic_directory", "remove_stale"]


def environment(device=None) -> dict:
    """Versions and machine: python, platform, torch, numpy, scipy, package, threads, device name."""
    import scipy
    import torch

    from .. import __version__

    info = {
        "torchnmf_l1": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device) if device is not None else "cpu",
    }
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def save_factors(path, factors: dict, *, config: dict | None = None, meta: dict | None = None) -> Path:
    """Save arrays (tensors are moved to the CPU) with the config and version as JSON strings."""
    from .. import __version__

    arrays = {}
    for name, value in factors.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arrays[name] = np.asarray(value)
    arrays["config"] = np.array(json.dumps(config or {}, default=str))
    arrays["meta"] = np.array(json.dumps(meta or {}, default=str))
    arrays["version"] = np.array(__version__)
    path = Path(path)
    np.savez(path, **arrays)
    return path


def load_factors(path) -> dict:
    """Inverse of :func:`save_factors`: arrays, plus ``config`` and ``meta`` as dicts."""
    with np.load(path, allow_pickle=False) as archive:
        out = {k: archive[k] for k in archive.files}
    for key in ("config", "meta"):
        if key in out:
            out[key] = json.loads(str(out[key]))
    if "version" in out:
        out["version"] = str(out["version"])
    return out


def write_report(path, report: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report, indent=2, default=str, allow_nan=True) + "\n")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale(target: Path) -> list[Path]:
    """Remove the hidden ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` folders next to ``target`` that a
    killed run left behind (their process is gone); returns what was removed."""
    removed = []
    for kind in ("tmp", "old"):
        for folder in target.parent.glob(f".{target.name}.{kind}-*"):
            pid = folder.name.split(f".{kind}-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


@contextmanager
def atomic_directory(target, *, overwrite: bool = False):
    """Yield a temporary folder next to ``target``, moved onto ``target`` only on success.

    On any exception the temporary folder (and any parent folder created for it) is
    removed, so a failed run leaves nothing behind; the folders of a run that was killed
    (and could not clean up) are removed by the next run into the same place. The
    folder gets the permissions of a folder made by ``mkdir`` (``0o777`` less the umask),
    not the private ``0o700`` of a temporary folder.
    """
    target = Path(target).resolve()
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: output folder already exists (pass --overwrite to replace it)")
    created = []
    parent = target.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
