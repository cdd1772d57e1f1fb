"""Ahead-of-time compile of every Triton kernel for a GPU that need not be present.

    python -m qssm.triton_aot [--arch 80 90] [--json]

compiles each kernel at the block sizes `qssm micro` runs (scan B=32 di=256 N=16, conv C=256 K=4,
every dtype and flag variant the models use) for sm_XX with Triton's own ptxas, and reads the
cubin's resource usage with the cuobjdump shipped in the same wheel: registers, shared memory,
and local memory / stack per thread -- non-zero local memory means the kernel spills registers.
Needs Triton, not a GPU; must run without TRITON_INTERPRET (the interpreter has no compiler).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["variants", "compile_variant", "resource_usage", "main"]

_DT = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "i32": "i32"}
SCAN_SIZE = dict(B=32, di=256, N=16)
CONV_SIZE = dict(C=256, K=4)


def variants():
    """[(label, kernel function, pointer dtypes {arg: dtype} (default fp32), constexprs)]."""
    import triton.language as tl

    from .ssm import triton_scan
    from .ssm._triton_conv_kernels import conv_silu_bwd, conv_silu_fwd
    from .ssm._triton_scan_kernels import scan_bwd, scan_fwd
    from .ssm.triton_conv import _blocks

    out = []
    blk_f = triton_scan.block_d(SCAN_SIZE["B"], SCAN_SIZE["di"])
    blk_b = triton_scan.block_d(SCAN_SIZE["B"], SCAN_SIZE["di"], backward=True)
    io_fwd = ("x_ptr", "dt_ptr", "b_ptr", "c_ptr", "y_ptr")
    io_bwd = ("x_ptr", "dt_ptr", "b_ptr", "c_ptr", "gy_ptr", "gx_ptr", "gdt_ptr")
    for dt in ("fp32", "bf16", "fp16"):
        for sp, rev in ((True, False), (True, True), (False, False)):
            base = dict(SOFTPLUS=sp, REVERSE=rev, BLOCK_N=SCAN_SIZE["N"], ACC=tl.float32)
            tag = f"{dt} softplus={int(sp)} reverse={int(rev)}"
            for keep in (True, False):
                out.append((f"scan_fwd {tag} keep={int(keep)}", scan_fwd, dict.fromkeys(io_fwd, dt),
                            dict(base, KEEP=keep, BLOCK_D=blk_f)))
            out.append((f"scan_bwd {tag}", scan_bwd, dict.fromkeys(io_bwd, dt), dict(base, BLOCK_D=blk_b)))
        for bwd, fn, io in ((False, conv_silu_fwd, ("x_ptr", "y_ptr")), (True, conv_silu_bwd, ("x_ptr", "gy_ptr", "gx_ptr"))):
            bt, bc = _blocks(CONV_SIZE["C"], backward=bwd)
            cc = dict(K=CONV_SIZE["K"], BLOCK_T=bt, BLOCK_C=bc, ACC=tl.float32)
            out.append((f"{fn.__name__} {dt}", fn, dict.fromkeys(io, dt), cc))
    out.extend(_circuit_variants())
    return out


def _circuit_variants():
    try:
        from .quantum.triton_circuits import aot_variants
    except ImportError:
        return []
    return aot_variants()


def compile_variant(fn, ptr_dtypes: dict, constexprs: dict, arch: int):
    """Compile one kernel for sm_<arch>; returns the CompiledKernel (its asm["cubin"] is the binary)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = "*" + _DT[ptr_dtypes.get(name, "fp32")]
        else:
            sig[name] = "i32"
    src = ASTSource(fn=fn, signature=sig, constexprs=dict(constexprs))
    return triton.compile(src, target=GPUTarget("cuda", arch, 32))


def _cuobjdump() -> str:
    import triton

    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if path.exists():
        return str(path)
    found = shutil.which("cuobjdump")
    if not found:
        raise RuntimeError("cuobjdump not found (neither in the triton wheel nor on PATH)")
    return found


def resource_usage(cubin: bytes) -> dict:
    """{REG, SHARED, LOCAL, STACK} of the (single) function in a cubin, via cuobjdump."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        text = subprocess.run([_cuobjdump(), "--dump-resource-usage", str(path)], capture_output=True,
                              text=True, check=True).stdout
    fields = dict(re.findall(r"\b(REG|SHARED|LOCAL|STACK):(\d+)", text.split("Function", 1)[-1]))
    return {k: int(v) for k, v in fields.items()}


def run(arches):
    rows = []
    for label, fn, ptrs, consts in variants():
        for arch in arches:
            kern = compile_variant(fn, ptrs, consts, arch)
            use = resource_usage(kern.asm["cubin"])
            rows.append(dict(kernel=label, arch=f"sm_{arch}", registers=use.get("REG"), shared=use.get("SHARED"),
                             local=use.get("LOCAL"), stack=use.get("STACK"), num_warps=kern.metadata.num_warps,
                             spills=bool(use.get("LOCAL", 0) or use.get("STACK", 0))))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qssm.triton_aot", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities (default 80 90)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("error: TRITON_INTERPRET=1 is set; the interpreter cannot compile. Unset it.", file=sys.stderr)
        return 2
    rows = run(args.arch)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'kernel':44s} {'arch':6s} {'regs':>5s} {'smem':>6s} {'local':>5s} {'stack':>5s} spills")
        for r in rows:
            print(f"{r['kernel']:44s} {r['arch']:6s} {r['registers']:5d} {r['shared']:6d} {r['local']:5d} {r['stack']:5d} "
                  f"{'YES' if r['spills'] else 'no'}")
    return 1 if any(r["spills"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
