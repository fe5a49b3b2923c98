"""Bad inputs over the public functions that take plain tensors: prints, per entry point, the inputs that pass silently, fail with torch's own message or a raw exception (run: python experiments/bad_inputs.py). The remaining rows are values that are valid (10**9 iterations, a rank above min(m, n), an empty batch of layer inputs, a sparse X for the distributed solver)."""
import os, sys, math, warnings, traceback
import numpy as np, torch
warnings.simplefilter("ignore")
import torchnmf_l1 as T
from torchnmf_l1 import kernels

g = torch.Generator().manual_seed(0)
X = torch.rand(12, 4, generator=g, dtype=torch.float64) @ torch.rand(4, 10, generator=g, dtype=torch.float64)
W = torch.rand(12, 3, generator=g, dtype=torch.float64)
def nan_(t): t = t.clone(); t.view(-1)[0] = math.nan; return t
def inf_(t): t = t.clone(); t.view(-1)[0] = math.inf; return t
def neg_(t): t = t.clone(); t.view(-1)[0] = -1; return t
def bad_matrices(M, name):
    return {f"{name}=None": None, f"{name}='abc'": "abc", f"{name}=[['a']]": [["a"]], f"{name} 1-D": M[0],
            f"{name} 3-D": M[None], f"{name} empty rows": M[:0], f"{name} empty cols": M[:, :0],
            f"{name} NaN": nan_(M), f"{name} inf": inf_(M), f"{name} negative": neg_(M),
            f"{name} complex": M.to(torch.complex128), f"{name} bool": M > 0.5, f"{name} float16": M.half(),
            f"{name} sparse": M.to_sparse(), f"{name} meta": M.to("meta"), f"{name} 4-D": M[None, None],
            f"{name} int": M.long() + 1, f"{name} scalar": M[0, 0]}
BAD_INT = {"0": 0, "-1": -1, "1.5": 1.5, "True": True, "'3'": "3", "None": None, "nan": math.nan, "10**9": 10**9}
BAD_FLOAT = {"-1": -1.0, "nan": math.nan, "inf": math.inf, "'x'": "x", "True": True, "[1]": [1]}
BAD_STR = {"'bogus'": "bogus", "3": 3, "None": None}

results = {}
import signal
class Hang(Exception): pass
def _alarm(*a): raise Hang()
signal.signal(signal.SIGALRM, _alarm)
def probe(entry, label, fn, ok_labels=()):
    signal.alarm(10)
    try:
        fn()
    except Hang:
        results.setdefault(entry, []).append((label, "HANG >10s", "")); return
    except (ValueError, TypeError) as e:
        msg = str(e)
        internal = any(s in msg for s in ("Expected", "expected scalar type", "size mismatch", "must match the size", "mat1 and mat2",
                                           "not implemented for", "Could not run", "only supports", "Sparse CSR", "argument 'input'", "unsupported operand"))
        signal.alarm(0)
        results.setdefault(entry, []).append((label, "torch-msg" if internal else "ok", msg[:110]))
        return
    except Exception as e:
        signal.alarm(0)
        results.setdefault(entry, []).append((label, f"RAW {type(e).__name__}", str(e)[:110]))
        return
    signal.alarm(0)
    results.setdefault(entry, []).append((label, "ok-accepted" if label in ok_labels else "SILENT", ""))

# h2nmf_clustering
for label, v in bad_matrices(X, "X").items():
    probe("h2nmf_clustering", label, lambda v=v: T.h2nmf_clustering(v, 3), ok_labels=("X int", "X float16", "X sparse"))
for label, v in BAD_INT.items():
    probe("h2nmf_clustering", f"n_clusters={label}", lambda v=v: T.h2nmf_clustering(X, v))
# ksparse
for label, v in bad_matrices(W, "W").items():
    probe("ksparse_nnls", label, lambda v=v: T.ksparse_nnls(v, X, 2), ok_labels=("W int", "W float16"))
for label, v in bad_matrices(X, "X").items():
    probe("ksparse_nnls", label, lambda v=v: T.ksparse_nnls(W, v, 2), ok_labels=("X int", "X float16"))
for label, v in BAD_INT.items():
    probe("ksparse_nnls", f"k={label}", lambda v=v: T.ksparse_nnls(W, X, v))
    probe("ksparse_nnls", f"max_sweeps={label}", lambda v=v: T.ksparse_nnls(W, X, 2, method="greedy", max_sweeps=v))
for label, v in BAD_STR.items():
    probe("ksparse_nnls", f"method={label}", lambda v=v: T.ksparse_nnls(W, X, 2, method=v))
probe("ksparse_nnls", "W float32 X float64", lambda: T.ksparse_nnls(W.float(), X, 2))
probe("ksparse_nnls", "W rows != X rows", lambda: T.ksparse_nnls(W[:5], X, 2))
# StreamingNMF
for label, v in BAD_INT.items():
    probe("StreamingNMF", f"rank={label}", lambda v=v: T.StreamingNMF(v))
    probe("StreamingNMF", f"block_size={label}", lambda v=v: T.StreamingNMF(3, block_size=v), ok_labels=("block_size=None",))
    probe("StreamingNMF", f"seed={label}", lambda v=v: T.StreamingNMF(3, seed=v), ok_labels=("seed=0", "seed=None", "seed=10**9"))
for label, v in BAD_FLOAT.items():
    probe("StreamingNMF", f"l1_reg_W={label}", lambda v=v: T.StreamingNMF(3, l1_reg_W=v))
for label, v in {"'float8'": "float8", "torch.int32": torch.int32, "3": 3}.items():
    probe("StreamingNMF", f"dtype={label}", lambda v=v: T.StreamingNMF(3, dtype=v))
probe("StreamingNMF", "device='cuda'", lambda: T.StreamingNMF(3, device="cuda"))
probe("StreamingNMF", "device='bogus'", lambda: T.StreamingNMF(3, device="bogus"))
probe("StreamingNMF", "solver='bogus'", lambda: T.StreamingNMF(3, solver="bogus"))
probe("StreamingNMF", "unknown option", lambda: T.StreamingNMF(3, foo=1))
for label, v in bad_matrices(X, "X").items():
    probe("StreamingNMF.fit", label, lambda v=v: T.StreamingNMF(3, dtype=torch.float64, seed=0).fit(v, max_iter=2), ok_labels=("X int", "X float16", "X sparse"))
for label, v in bad_matrices(W, "W").items():
    probe("StreamingNMF.fit", label, lambda v=v: T.StreamingNMF(3, dtype=torch.float64, seed=0).fit(X, W=v, max_iter=2), ok_labels=("W int", "W float16", "W=None"))
for label, v in BAD_INT.items():
    probe("StreamingNMF.fit", f"max_iter={label}", lambda v=v: T.StreamingNMF(3, seed=0).fit(X, max_iter=v), ok_labels=("max_iter=0", "max_iter=None"))
    probe("StreamingNMF.fit", f"checkpoint_every={label}", lambda v=v: T.StreamingNMF(3, seed=0).fit(X, max_iter=2, checkpoint_every=v))
probe("StreamingNMF.fit", "rank > min(m,n)", lambda: T.StreamingNMF(50, seed=0).fit(X, max_iter=2))
probe("StreamingNMF.fit", "shape wrong", lambda: T.StreamingNMF(3, seed=0).fit(X, shape=(5, 5), max_iter=2))
probe("StreamingNMF.fit", "shape='x'", lambda: T.StreamingNMF(3, seed=0).fit(X, shape="x", max_iter=2))
probe("StreamingNMF.fit", "resume no path", lambda: T.StreamingNMF(3, seed=0).fit(X, resume=True))
probe("StreamingNMF.fit", "resume='yes'", lambda: T.StreamingNMF(3, seed=0).fit(X, resume="yes", checkpoint="/tmp/x.pt"))
probe("StreamingNMF.fit", "generator='x'", lambda: T.StreamingNMF(3, seed=0).fit(X, generator="x"))
# NNLSLayer mu
for label, v in bad_matrices(torch.rand(5, 12, dtype=torch.float64), "x").items():
    probe("NNLSLayer mu", label, lambda v=v: T.NNLSLayer(12, 3, solver="mu", dtype=torch.float64)(v), ok_labels=("x 3-D", "x 1-D", "x 4-D", "x float16", "x int"))
for label, v in BAD_INT.items():
    probe("NNLSLayer mu", f"n_iter={label}", lambda v=v: T.NNLSLayer(12, 3, solver="mu", n_iter=v))
for label, v in BAD_FLOAT.items():
    probe("NNLSLayer mu", f"l1={label}", lambda v=v: T.NNLSLayer(12, 3, solver="mu", l1=v))
    probe("NNLSLayer mu", f"active_tol={label}", lambda v=v: T.NNLSLayer(12, 3, solver="mu", active_tol=v))
probe("NNLSLayer mu", "x wrong features", lambda: T.NNLSLayer(12, 3, solver="mu")(torch.rand(5, 11)))
probe("NNLSLayer mu", "x float64 vs W float32", lambda: T.NNLSLayer(12, 3, solver="mu")(torch.rand(5, 12, dtype=torch.float64)))
for label, v in BAD_STR.items():
    probe("NNLSLayer mu", f"backward={label}", lambda v=v: T.NNLSLayer(12, 3, solver="mu", backward=v))
    probe("NNLSLayer mu", f"loss={label}", lambda v=v: T.NNLSLayer(12, 3, solver="mu", loss=v))
# DictionaryCP
Tt = torch.rand(6, 7, 8, dtype=torch.float64)
D = torch.rand(6, 10, dtype=torch.float64)
for label, v in BAD_FLOAT.items():
    probe("DictionaryCP.fit", f"tol={label}", lambda v=v: T.DictionaryCP(3, dictionary=D, seed=0).fit(Tt, max_iter=3, tol=v))
    probe("NonnegativeCP.fit", f"tol={label}", lambda v=v: T.NonnegativeCP(3, seed=0).fit(Tt, max_iter=3, tol=v))
for label, v in {"empty": Tt[:0], "empty mode2": Tt[:, :0], "1-D": Tt[0, 0], "NaN all": torch.full((3, 3, 3), math.nan)}.items():
    probe("NonnegativeCP.fit", label, lambda v=v: T.NonnegativeCP(3, seed=0).fit(v, max_iter=3))
    probe("DictionaryCP.fit", label, lambda v=v: T.DictionaryCP(3, dictionary=D, seed=0).fit(v, max_iter=3))
# Distributed
import torch.distributed as dist
os.environ.setdefault("MASTER_ADDR", "127.0.0.1"); os.environ.setdefault("MASTER_PORT", "29533")
dist.init_process_group("gloo", rank=0, world_size=1)
from torchnmf_l1.distributed import DistributedNMFSolver
H = torch.rand(3, 10, dtype=torch.float64)
for label, v in bad_matrices(X, "X").items():
    probe("DistributedNMFSolver", label, lambda v=v: DistributedNMFSolver(v, W.clone(), H.clone()), ok_labels=("X int", "X float16"))
for label, v in bad_matrices(W, "W").items():
    probe("DistributedNMFSolver", label, lambda v=v: DistributedNMFSolver(X, v, H.clone()))
for label, v in bad_matrices(H, "H").items():
    probe("DistributedNMFSolver", label, lambda v=v: DistributedNMFSolver(X, W.clone(), v))
probe("DistributedNMFSolver", "W rows != X rows", lambda: DistributedNMFSolver(X, W[:5].clone(), H.clone()))
probe("DistributedNMFSolver", "H cols != X cols", lambda: DistributedNMFSolver(X, W.clone(), H[:, :4].clone()))
probe("DistributedNMFSolver", "rank W != rank H", lambda: DistributedNMFSolver(X, W.clone(), H[:2].clone()))
for label, v in BAD_STR.items():
    probe("DistributedNMFSolver", f"loss={label}", lambda v=v: DistributedNMFSolver(X, W.clone(), H.clone(), loss=v))
    probe("DistributedNMFSolver", f"solver={label}", lambda v=v: DistributedNMFSolver(X, W.clone(), H.clone(), solver=v), ok_labels=("solver=None",))
for label, v in BAD_FLOAT.items():
    probe("DistributedNMFSolver", f"l1_reg_W={label}", lambda v=v: DistributedNMFSolver(X, W.clone(), H.clone(), l1_reg_W=v))
    probe("DistributedNMFSolver", f"zero_weight={label}", lambda v=v: DistributedNMFSolver(X, W.clone(), H.clone(), loss="wl1", zero_weight=v))
probe("DistributedNMFSolver", "unknown option", lambda: DistributedNMFSolver(X, W.clone(), H.clone(), foo=1))
probe("DistributedNMFSolver", "group='x'", lambda: DistributedNMFSolver(X, W.clone(), H.clone(), group="x"))
probe("DistributedNMFSolver", "W float32 H float64", lambda: DistributedNMFSolver(X, W.float(), H.clone()))
dist.destroy_process_group()

total = bad = 0
for entry, rows in results.items():
    b = [r for r in rows if r[1] not in ("ok", "ok-accepted")]
    total += len(rows); bad += len(b)
    print(f"== {entry}: {len(b)} of {len(rows)} bad")
    for r in b:
        print("   ", r)
print("TOTAL", bad, "of", total)
