import sys
from nnunet_teacher_student.prediction.batch import find_cases
from nnunet_teacher_student.prediction.case import choose_regions
from nnunet_teacher_student.prediction.region import RegionPredictor
from nnunet_teacher_student.lungs.mask import lung_mask
from nnunet_teacher_student.core.geometry import Geometry
if __name__ == "__main__":
    rp = RegionPredictor(sys.argv[1], ["all"], device="cpu", tta=False)
    ct = find_cases(sys.argv[2])[0].read()
    sp = Geometry.of(ct).spacing[::-1]
    lm = lung_mask(ct)
    full = rp.work_estimate(Geometry.of(ct).array_shape, sp)
    for align in (False, True):
        boxes, est, name = choose_regions(rp, lm.mask > 0, lm.labels, sp, 10.0, None, True, align)
        print(align, name, [b.size for b in boxes], sum(e["tiles_run"] for e in est), "of full", full["tiles"])
