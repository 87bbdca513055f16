"""Where the GPU time goes: host-side breakdown and (under Nsight Compute) the kernels of each case.

    python benchmarks/gpu_profile.py --backend cuda --host-profile    # cProfile of one warm call per case
    ncu --profile-from-start off ... python benchmarks/gpu_profile.py --backend cuda --cases sarcoma_5beam

Each case is run once to warm up (module load, NVRTC, cupy's own kernels), then once more between
cudaProfilerStart and cudaProfilerStop, so Nsight Compute with ``--profile-from-start off`` records
only the warm call's kernels. The wall time of the warm call and the sum of its kernel times (from ncu)
differ by the host work and the transfers: that is the first thing to read.

Cases: sarcoma_5beam (the default case), slab256_9beam, vmat_36cp (every fifth control point of the
180-control-point arc: the kernels are the same, 36 launches instead of 180), impt_3field, and
op_sarcoma (one forward + adjoint of the dose operator on the sarcoma BODY).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_lib  # noqa: E402

import sfrt_engine as se  # noqa: E402


def _vmat_36cp():
    patient = se.phantoms.sarcoma_thigh()
    arc = se.plan.conformal_arc(patient, "PTV", se.load_machine("photon_6mv"), start_deg=181.0, stop_deg=179.0,
                                spacing_deg=2.0)
    return case_lib.Case("vmat_36cp", patient, list(arc)[::5])


BUILDERS = {
    "sarcoma_5beam": case_lib.sarcoma_5beam,
    "slab256_9beam": case_lib.slab_9beam,
    "vmat_36cp": _vmat_36cp,
    "impt_3field": case_lib.impt_3field,
    "op_sarcoma": case_lib.sarcoma_5beam,
}


def _call(name: str, case, backend: str):
    if name != "op_sarcoma":
        return lambda: se.compute_dose(case.beams, case.patient, backend=backend).gy
    from sfrt_engine.optimise import dose_operator

    op = dose_operator(case.beams, case.patient, voxels=case_lib.operator_voxels(case), backend=backend,
                       mode="matrix-free")
    rng = np.random.default_rng(1)
    w, r = op.weights0 * rng.uniform(0.5, 1.5, op.n_weights), rng.uniform(-0.5, 1.0, op.n_voxels)

    def once():
        float(op.forward(w).sum())
        op.adjoint(r)
    return once


#: Launch shapes tried by --sweep: (SFRT_CUDA_BLOCK_THREADS, SFRT_CUDA_WAVES); (256, 1) is the default.
SWEEP = [(256, 1), (128, 1), (128, 4), (128, 0), (256, 0), (64, 0), (512, 0)]


def sweep(args) -> int:
    """Best-of-``repeat`` wall time of each case (geometry cache warm) under each launch shape, one JSON line each;
    the dose must be bit-identical under every shape."""
    import json
    import os

    for name in args.cases:
        case = case_lib.impt_3field(backend=args.backend) if name == "impt_3field" else BUILDERS[name]()
        if name == "op_sarcoma":
            _sweep_operator(case, args)
            continue
        fn = _call(name, case, args.backend)
        reference = None
        for threads, waves in SWEEP:
            os.environ["SFRT_CUDA_BLOCK_THREADS"], os.environ["SFRT_CUDA_WAVES"] = str(threads), str(waves)
            out = fn()
            best = np.inf
            for _ in range(args.repeat):
                start = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - start)
            same = None
            if out is not None:
                reference = out if reference is None else reference
                same = bool(np.array_equal(out, reference))
            print("SWEEP " + json.dumps({"case": name, "backend": args.backend, "threads": threads, "waves": waves,
                                         "seconds": round(best, 5), "bit_identical_to_first": same}), flush=True)
    os.environ.pop("SFRT_CUDA_BLOCK_THREADS", None)
    os.environ.pop("SFRT_CUDA_WAVES", None)
    return 0


#: Adjoint thread targets tried by --sweep on op_sarcoma (SFRT_OPERATOR_ADJOINT_THREADS; 65,536 is the default).
ADJOINT_SWEEP = [1 << 16, 1 << 18, 1 << 20]


def _sweep_operator(case, args) -> None:
    """Forward + adjoint of the dose operator under each adjoint thread target (the operator rebuilt for each)."""
    import json
    import os

    from sfrt_engine.optimise import dose_operator

    rng = np.random.default_rng(1)
    reference = None
    for target in ADJOINT_SWEEP:
        os.environ["SFRT_OPERATOR_ADJOINT_THREADS"] = str(target)
        op = dose_operator(case.beams, case.patient, voxels=case_lib.operator_voxels(case), backend=args.backend,
                           mode="matrix-free")
        if reference is None:
            w = op.weights0 * rng.uniform(0.5, 1.5, op.n_weights)
            r = rng.uniform(-0.5, 1.0, op.n_voxels)
        grad = op.adjoint(r)
        best = np.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            float(op.forward(w).sum())
            grad = op.adjoint(r)
            best = min(best, time.perf_counter() - start)
        reference = grad if reference is None else reference
        rel = float(np.abs(grad - reference).max() / np.abs(reference).max())
        print("SWEEP " + json.dumps({"case": "op_sarcoma", "backend": args.backend, "adjoint_threads": target,
                                     "seconds_forward_adjoint": round(best, 5), "gradient_max_rel_diff": rel}),
              flush=True)
    os.environ.pop("SFRT_OPERATOR_ADJOINT_THREADS", None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--cases", nargs="+", default=list(BUILDERS))
    parser.add_argument("--host-profile", action="store_true", help="print the cProfile of one warm call per case")
    parser.add_argument("--sweep", action="store_true",
                        help="time each case under each launch shape of SWEEP (threads per block, waves) instead")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.sweep:
        return sweep(args)
    gpu = args.backend in ("cuda", "cupy")
    if gpu:
        import cupy as cp
    for name in args.cases:
        case = case_lib.impt_3field(backend=args.backend) if name == "impt_3field" else BUILDERS[name]()
        fn = _call(name, case, args.backend)
        fn()
        fn()  # warm-up (twice: the first call also loads modules and compiles)
        start = time.perf_counter()
        fn()
        warm = time.perf_counter() - start
        if args.host_profile:
            prof = cProfile.Profile()
            prof.enable()
            fn()
            prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
            body = "\n".join(line for line in text.getvalue().splitlines() if line.strip())
        if gpu:
            cp.cuda.runtime.deviceSynchronize()
            cp.cuda.runtime.profilerStart()
            fn()
            cp.cuda.runtime.deviceSynchronize()
            cp.cuda.runtime.profilerStop()
        print(f"CASE {name} backend={args.backend} warm_call_s={warm:.4f} {case.describe()}", flush=True)
        if args.host_profile:
            print(body, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
