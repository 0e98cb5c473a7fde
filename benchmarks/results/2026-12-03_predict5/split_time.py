"""Issue 18, session 9: where the CPU time of nnts predict goes on the real series with the clinical-size network.

The network's forward pass is timed on its own (one tile, several times); then full-volume and default prediction run
with the forward pass replaced by zeros of the right shape, so what they still take is everything else (nnU-Net's
resampling and normalisation, the Gaussian accumulation over tiles, the resampling back, our lung mask and crop).
CPU time = tiles x forward + the rest.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, "/tmp/snap19/benchmarks")
from nnunet_teacher_student.prediction.batch import find_cases  # noqa: E402
from nnunet_teacher_student.prediction.case import predict_case  # noqa: E402
from nnunet_teacher_student.prediction.region import RegionPredictor  # noqa: E402
from nnunet_teacher_student.core.geometry import Geometry  # noqa: E402

if __name__ == "__main__":
    model, series, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    rp = RegionPredictor(model, ["all"], device="cpu", tta=False)
    p = rp.predictor
    patch = [int(s) for s in p.configuration_manager.patch_size]
    x = torch.zeros((1, 1, *patch))
    real = p._internal_maybe_mirror_and_predict
    real(x)  # warm-up
    times = []
    for _ in range(3):
        c0 = time.process_time()
        real(x)
        times.append(time.process_time() - c0)
    forward = float(np.median(times))
    heads = p.label_manager.num_segmentation_heads
    p._internal_maybe_mirror_and_predict = lambda t: torch.zeros((t.shape[0], heads, *t.shape[2:]))
    ct = find_cases(series)[0].read()
    rows = {"forward_cpu_s_per_tile": round(forward, 2), "forward_samples_s": [round(t, 2) for t in times]}
    for mode in ("full", "default"):
        t0, c0, n0 = time.perf_counter(), time.process_time(), p.tiles_run
        if mode == "full":
            arr = sitk.GetArrayFromImage(ct).astype(np.float32)[None]
            rp.predict_array(arr, Geometry.of(ct).spacing[::-1])
            stages = None
        else:
            stages = predict_case(rp, ct, lung_dilation_mm=None).report["timings_s"]
        rest = time.process_time() - c0
        tiles = p.tiles_run - n0
        rows[mode] = {"tiles": tiles, "rest_cpu_s": round(rest, 1), "rest_wall_s": round(time.perf_counter() - t0, 1),
                      "stages_without_network_s": stages, "estimated_cpu_s": round(tiles * forward + rest, 1)}
        print(mode, rows[mode], flush=True)
    rows["estimated_speedup"] = round(rows["full"]["estimated_cpu_s"] / rows["default"]["estimated_cpu_s"], 3)
    rows["tile_ratio"] = round(rows["full"]["tiles"] / rows["default"]["tiles"], 3)
    print(json.dumps(rows, indent=1))
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
