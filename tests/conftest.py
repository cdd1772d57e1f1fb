"""Test-session set-up. Without a GPU, Triton can only run through its interpreter, and Triton
reads TRITON_INTERPRET when its modules are imported: set it before anything imports Triton, so
the Triton tests (test_triton.py) can run the CUDA code path on CPU tensors. It changes nothing
else: qssm takes the interpreter path only when QSSM_TRITON=interpret is set as well."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
