"""The demo's and the benchmark's vocabulary: the CPU presets and the display names of every model they train."""

from __future__ import annotations

from ..core.models import model_names

#: the reduced CPU configuration per phantom preset (tiny phantoms are 32-48 voxels in-plane)
CPU_SMALL = {
    "default": {
        "name": "3d_small",
        "patch_size": (16, 48, 48),
        "features": (8, 16, 32, 64),
        "batch_size": 2,
    },
    "tiny": {
        "name": "3d_small",
        "patch_size": (16, 32, 32),
        "features": (8, 16, 32),
        "batch_size": 2,
    },
}
#: the CPU training budget per model of the demo and the benchmark (why these: BENCHMARKS.md, the demo)
CPU_PRESET, CPU_EPOCHS, CPU_ITERATIONS, CPU_VAL_ITERATIONS = "tiny", 10, 100, 3
#: display names of every model the demo and the benchmark train (core.models)
MODEL_NAMES = model_names()
