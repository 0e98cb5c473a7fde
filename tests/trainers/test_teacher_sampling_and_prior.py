"""The box teacher's training parts on real computations: online box channel, lesion-balanced off-centre
locations, and the box prior that keeps an untrained teacher out of the all-background state."""

from __future__ import annotations

import numpy as np
import torch

from nnunet_teacher_student.formats.annotator import Annotator
from nnunet_teacher_student.core.components import label_components
from nnunet_teacher_student.trainers.box_input import BoxPrior, OnlineBoxChannel
from nnunet_teacher_student.trainers.lesion_sampling import balanced_location, lesion_points


def _two_lesions(shape=(16, 32, 32)) -> np.ndarray:
    z, y, x = np.indices(shape)
    big = ((z - 8) / 5) ** 2 + ((y - 10) / 7) ** 2 + ((x - 10) / 7) ** 2 <= 1
    small = ((z - 8) / 2) ** 2 + ((y - 25) / 2) ** 2 + ((x - 25) / 2) ** 2 <= 1
    return (big | small).astype(np.int16)


def _apply(transform, label: np.ndarray) -> np.ndarray:
    img = torch.zeros((2, *label.shape))
    img[1] = 1.0  # a stale box channel that must be replaced
    out = transform(image=img, segmentation=torch.from_numpy(label[None]))
    return out["image"][1].numpy()


def test_online_box_channel_one_box_per_lesion_per_slice_aligned_and_fresh():
    label = _two_lesions()
    np.random.seed(0)
    exact = _apply(OnlineBoxChannel(1, Annotator.exact(), (2.0, 0.7, 0.7)), label)
    assert set(np.unique(exact)) <= {0.0, 1.0}
    lesions, _ = label_components(label > 0)
    for z in range(label.shape[0]):
        n_lesions = len(set(np.unique(lesions[z])) - {0})
        _, n_boxes = label_components(exact[z][None] > 0)
        assert n_boxes == n_lesions, f"slice {z}: {n_boxes} boxes for {n_lesions} lesions"
        for lid in set(np.unique(lesions[z])) - {
            0
        }:  # tight: the box is the lesion's in-plane bounding box
            ys, xs = np.nonzero(lesions[z] == lid)
            assert exact[z, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    assert not (label.astype(bool) & (exact == 0)).any()
    noisy = OnlineBoxChannel(1, Annotator(edge_fraction=0.2, exact_share=0.0), (2.0, 0.7, 0.7))
    a, b = _apply(noisy, label), _apply(noisy, label)
    assert (a != b).any(), "two draws of the same sample must differ"
    assert ((a > 0) & (label > 0)).sum() / (label > 0).sum() > 0.8


def test_online_box_channel_of_a_3d_box_teacher_draws_one_box_per_lesion():
    """A teacher dataset of 3-D boxes trains on 3-D boxes: the same rectangle on every slice a lesion spans."""
    label = _two_lesions()
    np.random.seed(1)
    boxes = _apply(
        OnlineBoxChannel(
            1, Annotator(edge_fraction=0.2, exact_share=0.0), (2.0, 0.7, 0.7), mode="lesion3d"
        ),
        label,
    )
    lesions, n = label_components(label > 0)
    for lid in range(1, n + 1):
        zs = np.flatnonzero((lesions == lid).any(axis=(1, 2)))
        # the lesion's own column of the box channel (its 3-D box), identical on each of its slices
        ys, xs = np.nonzero((lesions == lid).any(axis=0))
        window = boxes[zs, max(ys.min() - 3, 0) : ys.max() + 4, max(xs.min() - 3, 0) : xs.max() + 4]
        assert all((w == window[0]).all() for w in window), (
            f"lesion {lid}: the box changes across slices"
        )
        assert window[0].any()


def test_lesion_balanced_locations_are_uniform_over_lesions_and_off_centre():
    label = _two_lesions()
    lesions = lesion_points(label[None], np.random.default_rng(0))
    assert sorted(len(p) for p in lesions)[0] < 50 < sorted(len(p) for p in lesions)[1]
    rng = np.random.default_rng(1)
    locs = np.concatenate(
        [balanced_location(lesions, np.array([7, 15, 15]), rng) for _ in range(2000)]
    )
    in_small = np.hypot(locs[:, 2] - 25, locs[:, 3] - 25) < 2 + 15 * 1.5
    in_big = np.hypot(locs[:, 2] - 10, locs[:, 3] - 10) < 7 + 15 * 1.5
    share_small = (in_small & ~in_big).sum() / max((in_small ^ in_big).sum(), 1)
    assert 0.35 < share_small < 0.65, (
        f"small lesion chosen {share_small:.2f} of the time (voxel-uniform: ~0.03)"
    )
    labelled = np.zeros(len(locs), bool)
    for i, (_, z, y, x) in enumerate(locs):
        labelled[i] = 0 <= z < 16 and 0 <= y < 32 and 0 <= x < 32 and label[z, y, x] > 0
    assert labelled.mean() < 0.9, "offsets must move the patch centre off the tumour"


def test_a_2d_patch_moves_the_location_in_plane_and_keeps_the_lesion_slice():
    label = _two_lesions()
    lesions = lesion_points(label[None], np.random.default_rng(0))
    rng = np.random.default_rng(2)
    locs = np.concatenate([balanced_location(lesions, np.array([15, 15]), rng) for _ in range(500)])
    assert locs.shape == (500, 4)
    assert all(label[z].any() for z in locs[:, 1]), (
        "nnU-Net's 2-D loader takes the slice: it must hold a lesion"
    )
    assert np.ptp(locs[:, 2]) > 15 and np.ptp(locs[:, 3]) > 15


class _Zero(torch.nn.Module):
    decoder = None

    def forward(self, x):
        return torch.zeros((x.shape[0], 2, *x.shape[2:]))


def test_box_prior_makes_an_untrained_teacher_predict_the_box_not_nothing():
    box = torch.zeros((1, 2, 8, 32, 32))
    box[0, 1, 2:6, 10:20, 10:20] = 1
    net = BoxPrior(_Zero(), 1, (0, 2, 2))
    prob = torch.softmax(net(box), 1)[0, 1]
    inside, ring, outside = prob[3, 15, 15], prob[3, 15, 21], prob[3, 15, 28]
    assert inside > 0.85 and 0.2 < ring < 0.5 and outside < 1e-3
    pred = prob > 0.5
    assert torch.equal(pred, box[0, 1] > 0)


def test_hu_aware_prior_starts_dark_box_voxels_as_background():
    x = torch.zeros((1, 2, 8, 32, 32))
    x[0, 1, 2:6, 10:20, 10:20] = 1
    x[0, 0] = -2.4  # normalised lung / air
    x[0, 0, 3:5, 12:16, 12:16] = 0.5  # a bright lesion inside the box
    net = BoxPrior(_Zero(), 1, (0, 2, 2), bright_threshold=-1.95)
    prob = torch.softmax(net(x), 1)[0, 1]
    assert (
        prob[4, 14, 14] > 0.85 and prob[4, 18, 18] < 0.5
    )  # bright: tumour; dark box corner: background
    assert torch.equal(prob > 0.5, (x[0, 1] > 0) & (x[0, 0] > -1.95))


def test_2d_configuration_box_channel_and_prior_work_on_one_slice():
    """nnU-Net's 2d configuration hands the teacher 2-D samples: boxes are drawn on the slice, both axes are
    in-plane (the box zone grows along both) and the prior pools in 2-D."""
    from nnunet_teacher_student.trainers.teachers import box_zone_margin

    label = _two_lesions()[8]
    np.random.seed(0)
    online = OnlineBoxChannel(1, Annotator(edge_fraction=0.0, exact_share=1.0), (2.0, 2.0))
    box = _apply(online, label)
    assert box.shape == label.shape and box[label > 0].all()
    big = label[:18, :18] > 0
    assert box[:18, :18][big].all() and box[:18, :18].sum() == (np.ptp(np.nonzero(big)[0]) + 1) * (
        np.ptp(np.nonzero(big)[1]) + 1
    )  # exact annotator: the lesion's bounding rectangle
    assert box_zone_margin([2.0, 2.0], 0) == [1, 1] and box_zone_margin([3.0, 2.0, 2.0], 0) == [
        0,
        1,
        1,
    ]
    x = torch.zeros((1, 2, 32, 32))
    x[0, 1, 10:20, 10:20] = 1
    prob = torch.softmax(BoxPrior(_Zero(), 1, (2, 2))(x), 1)[0, 1]
    assert (
        prob.shape == (32, 32)
        and prob[15, 15] > 0.85
        and 0.2 < prob[15, 21] < 0.5
        and prob[15, 28] < 1e-3
    )
