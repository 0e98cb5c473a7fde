"""Tile counts on the real series: the current 'touches' rule vs a 'core' rule (tile's central part)."""
import itertools
import numpy as np, SimpleITK as sitk
from nnunet_teacher_student.lungs.mask import lung_mask
from nnunet_teacher_student.prediction.tiles import TileMask, count_tiles

from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

SERIES = "/work/shared/data/lung-pet-ct-dx-sample/Lung-PET-CT-Dx/Lung_Dx-A0002/04-25-2007-NA-ThoraxAThoraxRoutine Adult-34834/3.000000-ThoraxRoutine  8.0.0  B40f-10983"
r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(SERIES)); ct = r.Execute()
sp = ct.GetSpacing()[::-1]; shape = sitk.GetArrayFromImage(ct).shape
lungs = lung_mask(ct, method="classical")
m = lungs.mask > 0
target = (1.35, 0.8422, 0.8422)
new = [int(round(n * s / t)) for n, s, t in zip(shape, sp, target)]
print("shape", shape, "->", new, "lungs", m.mean())
def core_count(tm, whole, patch, step, core, crop=True):
    offset, stop = tm.box_on(whole) if crop else ([0]*3, whole)
    shp = [b - a for a, b in zip(offset, stop)]
    padded = [max(s, p) for s, p in zip(shp, patch)]
    steps = compute_steps_for_sliding_window(tuple(padded), tuple(patch), step)
    kept = 0
    for st in itertools.product(*steps):
        a, b = [], []
        for s0, p, n in zip(st, patch, padded):
            cut = int(p * (1 - core) / 2)
            a.append(0 if s0 == 0 else s0 + cut); b.append(n if s0 + p >= n else s0 + p - cut)
        kept += tm.keeps(a, b, padded, shp, offset, whole)
    return kept, int(np.prod([len(s) for s in steps]))
for patch in ([16, 32, 32], [20, 40, 40], [80, 192, 160]):
    for margin in (10, 5):
        tm = TileMask.around(m, sp, margin)
        full = count_tiles(new, patch, 0.5)[1]
        fs = count_tiles(new, patch, 0.5, tm)[0]
        gb = count_tiles(new, patch, 0.5, TileMask(tm.mask, tm.grow, skip=False), crop=True)[0]
        gs = count_tiles(new, patch, 0.5, tm, crop=True)[0]
        c5 = core_count(tm, new, patch, 0.5, 0.5)[0]
        c75 = core_count(tm, new, patch, 0.5, 0.75)[0]
        print(patch, f"m{margin}", dict(full=full, full_skip=fs, grid_box=gb, grid_skip=gs, core50=c5, core75=c75),
              "speedups", round(full/gs, 2), round(full/c5, 2), round(full/c75, 2))
