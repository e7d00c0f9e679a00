#!/usr/bin/python3
"""Independent cross-check of bench_quant_quality's N(0,1) column: the relative MSE of Q4_0,
MXFP4 (tests/reference/ggml_formats.py), NVFP4 (tests/reference/nvfp4.py) and HIF4
(tests/reference/hif4.py), numpy implementations written from the formats' definitions, on 2^22
values drawn by numpy's own generator (not the C's), so agreement to 3 digits says both the C
quantizers and the C statistics are right, within the sampling error of either draw.
Run from the repository root: /usr/bin/python3 bench/quant_quality_check.py"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import ggml_formats as G  # noqa: E402
import hif4 as H  # noqa: E402
import nvfp4 as N  # noqa: E402

COLS = 4096
x = np.random.default_rng(7).standard_normal(((1 << 22) // COLS, COLS)).astype(np.float32)
x64 = x.astype(np.float64)


def rel(y):
    d = x64 - y.astype(np.float64)
    return (d * d).sum() / (x64 * x64).sum()


figs = {
    "Q4_0": rel(G.dequantize(G.quantize(x, G.Q4_0), G.Q4_0, COLS)),
    "MXFP4": rel(G.dequantize(G.quantize(x, G.MXFP4), G.MXFP4, COLS)),
    "NVFP4": rel(N.dequantize(N.quantize(x), COLS)),
    "HIF4": rel(H.decode(H.encode(x), COLS)),
}
for k, v in figs.items():
    print(f"{k:6s} relative MSE {v:.4g}  SQNR {-10 * np.log10(v):.2f} dB")
print(f"HIF4 against NVFP4 {100 * (figs['HIF4'] / figs['NVFP4'] - 1):+.1f}%, "
      f"against MXFP4 {100 * (figs['HIF4'] / figs['MXFP4'] - 1):+.1f}%")
