"""Synthetic chest-CT phantom: determinism, intensities, anatomy, tumour sizes, written datasets."""

from __future__ import annotations

import json
from pathlib import Path

import cc3d
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_teacher_student.formats.boxes import BoxSet
from nnunet_teacher_student.cli import main
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import read_image
from nnunet_teacher_student.phantom.cases import PRESETS, generate_case
from nnunet_teacher_student.phantom.datasets import write_phantom_datasets
from nnunet_teacher_student.phantom.settings import PhantomSettings
from nnunet_teacher_student.phantom.anatomy import AIR, BONE, LUNG, TUMOUR_GGO, TUMOUR_SOLID
from nnunet_teacher_student.phantom.tumours import SITE_DIAMETER_MM, sample_tumour_diameters
from nnunet_teacher_student.formats.weak_set import WeakSet

SITES = ("msd", "nsclc", "lpcd")
#: CT and label sums of generate_case(5, "nsclc", preset="tiny"), written by the code before phantom families
STANDARD_CT_SUM, STANDARD_LABEL_SUM = -33497133, 1353


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


@pytest.fixture(scope="module")
def tiny_cases():
    """12 tiny cases with 3 tumours requested each, all sites."""
    return [generate_case(s, SITES[s % 3], preset="tiny", n_tumours=3) for s in range(12)]


def test_same_seed_same_case_other_seed_other_case():
    a, b = generate_case(5, "lpcd", preset="tiny"), generate_case(5, "lpcd", preset="tiny")
    for x, y in ((a.ct, b.ct), (a.label, b.label), (a.lungs, b.lungs)):
        np.testing.assert_array_equal(arr(x), arr(y))
        assert x.GetSpacing() == y.GetSpacing() and x.GetOrigin() == y.GetOrigin()
    assert a.info == b.info
    c = generate_case(6, "lpcd", preset="tiny")
    assert arr(c.ct).shape != arr(a.ct).shape or not np.array_equal(arr(c.ct), arr(a.ct))


def test_image_types_and_geometry(tiny_cases):
    case = tiny_cases[0]
    assert case.ct.GetPixelID() == sitk.sitkInt16
    assert case.label.GetPixelID() == sitk.sitkUInt8 and case.lungs.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(arr(case.label))) <= {0, 1}
    for img in (case.label, case.lungs):
        assert img.GetSize() == case.ct.GetSize() and img.GetSpacing() == case.ct.GetSpacing()
        assert img.GetOrigin() == case.ct.GetOrigin()


def test_hu_ranges_plausible(tiny_cases):
    solid, ggo = [], []
    for case in tiny_cases:
        ct, t = arr(case.ct).astype(float), case.tissues
        air = ndimage.binary_erosion(t == AIR, iterations=2)
        assert np.median(ct[air]) < -950
        lung = ndimage.binary_erosion(t == LUNG)
        assert -920 < np.median(ct[lung]) < -760
        bone = ct[t == BONE]
        assert 300 < np.median(bone) < 1100 and np.percentile(bone, 95) > 400
        core = ndimage.binary_erosion(t == TUMOUR_SOLID, np.ones((1, 3, 3)))
        solid.extend(ct[core])
        ggo.extend(ct[t == TUMOUR_GGO])
    assert len(solid) > 50 and -60 < np.median(solid) < 100
    assert len(ggo) > 10 and -700 < np.median(ggo) < -200, (
        "expected part-solid tumours with a ground-glass halo"
    )
    assert sum(tu["part_solid"] for c in tiny_cases for tu in c.info["tumours"]) >= 1


def test_tumours_stay_inside_lungs(tiny_cases):
    for case in tiny_cases:
        label, lungs = arr(case.label).astype(bool), arr(case.lungs).astype(bool)
        assert label.any()
        assert not (label & ~ndimage.binary_dilation(lungs)).any()
        assert not (label & ~lungs).any()  # the true lung mask includes the tumours
        assert not (label & (case.tissues == BONE)).any()


def test_juxtapleural_flags_are_true_and_both_kinds_occur(tiny_cases):
    flags = []
    for case in tiny_cases:
        label, lungs = arr(case.label), arr(case.lungs).astype(bool)
        comps, n = cc3d.connected_components(label, connectivity=26, return_N=True)
        assert n == case.info["n_tumours"]
        touching = sum(
            bool((ndimage.binary_dilation(comps == i) & ~lungs).any())  # face neighbours
            for i in range(1, n + 1)
        )
        case_flags = [tu["juxtapleural"] for tu in case.info["tumours"]]
        assert touching == sum(case_flags)
        flags.extend(case_flags)
    assert any(flags) and not all(flags)


def test_tumour_info_matches_label(tiny_cases):
    for case in tiny_cases:
        label = arr(case.label)
        voxel_ml = np.prod(case.ct.GetSpacing()) / 1000
        vols = [tu["volume_ml"] for tu in case.info["tumours"]]
        assert sum(vols) == pytest.approx(label.sum() * voxel_ml, rel=1e-3)
        for tu in case.info["tumours"]:
            assert label[tuple(tu["center_zyx"])] == 1  # the centre lies inside its tumour
            assert tu["diameter_mm"] > 0 and tu["n_voxels"] >= 1


def test_size_sampler_orders_sites_like_table1():
    rng = np.random.default_rng(0)
    means = {s: sample_tumour_diameters(rng, s, 400).mean() for s in SITES}
    assert means["msd"] < means["lpcd"] < means["nsclc"]
    for s in SITES:
        assert means[s] == pytest.approx(SITE_DIAMETER_MM[s][0], rel=0.12)


def test_generated_tumours_bigger_at_nsclc_than_msd():
    def mean_diam(site):
        d = [
            tu["diameter_mm"]
            for s in range(8)
            for tu in generate_case(100 + s, site, preset="tiny", n_tumours=1).info["tumours"]
        ]
        return np.mean(d)

    assert mean_diam("msd") < mean_diam("nsclc")


def test_spacing_and_size_within_ranges():
    for s in range(6):
        case = generate_case(
            s, SITES[s % 3], preset="tiny", spacing_xy=(0.7, 0.9), spacing_z=(1.5, 3.0)
        )
        sx, sy, sz = case.ct.GetSpacing()
        assert sx == sy and 0.7 <= sx <= 0.9 and 1.5 <= sz <= 3.0
        nx, ny, nz = case.ct.GetSize()
        assert 32 <= nx <= 48 and nx == ny and 16 <= nz <= 24
    d = PRESETS["default"]
    for s in range(3):
        case = generate_case(s, SITES[s], preset="default")
        sx, _, sz = case.ct.GetSpacing()
        nx, _, nz = case.ct.GetSize()
        assert d.spacing_xy[0] <= sx <= d.spacing_xy[1] and d.spacing_z[0] <= sz <= d.spacing_z[1]
        assert d.inplane_px[0] <= nx <= d.inplane_px[1] and d.slices[0] <= nz <= d.slices[1]


def test_scale_shrinks_the_volume():
    small = generate_case(1, "msd", preset="tiny")
    big = generate_case(1, "msd", preset="tiny", scale=0.14)
    assert np.prod(big.ct.GetSize()) > 1.5 * np.prod(small.ct.GetSize())


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="site"):
        generate_case(0, "nowhere")
    with pytest.raises(InputError, match="scale"):
        generate_case(0, "msd", scale=0)
    with pytest.raises(InputError, match="spacing_z"):
        generate_case(0, "msd", spacing_z=(3.0, 1.0))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_phantom_datasets(
        PhantomSettings(
            out / "work",
            7,
            n_strong=3,
            n_weak=3,
            n_test=2,
            seed=1,
            preset="tiny",
            raw_dir=out / "raw",
            annotator="exact",
            progress=False,
        )
    )
    return out, summary


@pytest.mark.slow  # nnU-Net starts a spawned worker that imports torch
def test_written_strong_dataset_passes_nnunet_integrity_check(written):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    out, summary = written
    folder = out / "raw" / "Dataset007_PhantomLung"
    assert summary["dataset_dir"] == str(folder)
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "CT"} and ds["labels"] == {"background": 0, "tumor": 1}
    assert ds["numTraining"] == 3 and ds["file_ending"] == ".nii.gz"
    verify_dataset_integrity(str(folder), num_processes=1)


def test_written_manifest_weak_and_test_sets(written):
    out, _ = written
    work = out / "work"
    manifest = json.loads((work / "manifest.json").read_text())
    assert sorted(manifest) == [f"phantom_{i:04d}" for i in range(1, 9)]
    assert [manifest[c]["split"] for c in sorted(manifest)] == ["strong"] * 3 + ["weak"] * 3 + [
        "test"
    ] * 2
    assert {m["site"] for m in manifest.values()} == set(SITES)
    assert len({m["patient"] for m in manifest.values()}) == 8
    weak = WeakSet(work / "weak")
    assert weak.case_ids() == ["phantom_0004", "phantom_0005", "phantom_0006"]
    for cid in weak.case_ids():
        image, boxset = weak.read_case(cid)
        assert boxset.boxes and manifest[cid]["n_tumours"] >= 1
        assert len(manifest[cid]["tumour_volumes_ml"]) == manifest[cid]["n_tumours"]
        assert image.GetSpacing() == pytest.approx(
            manifest[cid]["spacing"], rel=1e-6
        )  # NIfTI: float32
    for cid in ("phantom_0007", "phantom_0008"):
        img = read_image(work / "test" / "images" / f"{cid}.nii.gz")
        lab = read_image(work / "test" / "labels" / f"{cid}.nii.gz")
        assert img.GetSize() == lab.GetSize()
    assert len(list((work / "lungs").glob("*.nii.gz"))) == 8
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_exact_weak_boxes_cover_every_tumour_voxel(written):
    out, _ = written
    weak = WeakSet(out / "work" / "weak")
    for cid in weak.case_ids():
        label = arr(read_image(weak.label_path(cid))).astype(bool)
        boxes = BoxSet.load(weak.boxes_path(cid))
        boxmask, _ = weak.read_boxmask(cid, boxes.geometry)
        assert not (label & (boxmask == 0)).any()
        assert set(np.flatnonzero(label.any(axis=(1, 2)))) == {b.slice for b in boxes.boxes}


def test_same_seed_writes_same_data_and_existing_output_is_refused(written, tmp_path):
    out, _ = written
    args = dict(
        n_strong=3, n_weak=3, n_test=2, seed=1, preset="tiny", annotator="exact", progress=False
    )
    with pytest.raises(InputError, match="already exists"):
        write_phantom_datasets(PhantomSettings(out / "work", 7, raw_dir=out / "raw", **args))
    with pytest.raises(
        InputError, match="already exists"
    ):  # outputs exist even with a fresh raw folder
        write_phantom_datasets(PhantomSettings(out / "work", 7, raw_dir=tmp_path / "raw", **args))
    with pytest.raises(InputError, match="another dataset already uses id 7"):
        write_phantom_datasets(
            PhantomSettings(tmp_path / "w", 7, raw_dir=out / "raw", dataset_name="Other", **args)
        )
    write_phantom_datasets(PhantomSettings(tmp_path / "w", 9, raw_dir=tmp_path / "raw", **args))
    a = arr(
        read_image(out / "raw" / "Dataset007_PhantomLung" / "imagesTr" / "phantom_0002_0000.nii.gz")
    )
    b = arr(
        read_image(
            tmp_path / "raw" / "Dataset009_PhantomLung" / "imagesTr" / "phantom_0002_0000.nii.gz"
        )
    )
    np.testing.assert_array_equal(a, b)
    assert json.loads((out / "work" / "manifest.json").read_text()) == json.loads(
        (tmp_path / "w" / "manifest.json").read_text()
    )
    s = write_phantom_datasets(
        PhantomSettings(
            tmp_path / "w",
            9,
            raw_dir=tmp_path / "raw",
            overwrite=True,
            **{**args, "n_strong": 2, "n_weak": 0, "n_test": 0},
        )
    )
    ds = json.loads((tmp_path / "raw" / "Dataset009_PhantomLung" / "dataset.json").read_text())
    assert ds["numTraining"] == 2 and s["n_cases"] == 2
    assert len(list((tmp_path / "raw" / "Dataset009_PhantomLung" / "imagesTr").iterdir())) == 2
    assert not list((tmp_path / "w" / "weak" / "images").iterdir())


def test_cli_synth(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    base = [
        "synth",
        "-o",
        str(tmp_path / "w"),
        "-d",
        "11",
        "--strong",
        "2",
        "--weak",
        "1",
        "--test",
        "1",
        "--preset",
        "tiny",
    ]
    assert main(base) == 1
    assert "nnUNet_raw" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert main(base + ["--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "seconds per case" in printed and "Dataset011_PhantomLung" in printed
    assert (
        tmp_path / "raw" / "Dataset011_PhantomLung" / "imagesTr" / "phantom_0001_0000.nii.gz"
    ).is_file()
    assert main(base) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(base + ["--overwrite", "--sites", "paper", "-np", "2"]) == 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert (
        manifest["phantom_0003"]["site"] == "lpcd"
    )  # paper: the weak set comes from Lung-PET-CT-Dx


def test_standard_family_is_unchanged_by_the_family_code():
    """The families add draws after the standard ones: a standard case is the one the project always had
    (its CT and label sums as written before families existed, from the commit before them)."""
    case = generate_case(5, "nsclc", preset="tiny")
    assert (
        int(arr(case.ct).astype(np.int64).sum()) == STANDARD_CT_SUM
        and int(arr(case.label).sum()) == STANDARD_LABEL_SUM
    )
    assert case.info["family"] == "standard" and case.info["consolidation_ml"] == 0


def test_copd_family_has_emphysema_consolidation_and_pleural_tumours():
    from nnunet_teacher_student.phantom.anatomy import SOFT

    std = [generate_case(s, SITES[s % 3], preset="tiny", min_tumours=1) for s in range(18)]
    copd = [
        generate_case(s, SITES[s % 3], preset="tiny", min_tumours=1, family="copd")
        for s in range(18)
    ]

    def bleb_share(c):  # aerated lung below -955 HU, tumours and consolidation aside
        lung = (arr(c.lungs) > 0) & (c.tissues == LUNG)
        return float((arr(c.ct)[lung] < -955).mean())

    assert np.mean([bleb_share(c) for c in copd]) > 3 * np.mean([bleb_share(c) for c in std])
    cons = [c for c in copd if c.info["consolidation_ml"] > 0]
    assert len(cons) >= 4 and not any(c.info["consolidation_ml"] for c in std)
    for c in cons:  # consolidation: soft-tissue density inside the lung, never labelled tumour
        where = (c.tissues == SOFT) & (arr(c.lungs) > 0) & (arr(c.label) == 0)
        assert where.any() and np.median(arr(c.ct)[where]) > -300

    def pleural(cases):
        ts = [t for c in cases for t in c.info["tumours"]]
        return np.mean([t["placement"] == "juxtapleural" for t in ts])

    assert pleural(copd) > pleural(std) + 0.1
    with pytest.raises(InputError, match="unknown phantom family"):
        generate_case(0, "msd", preset="tiny", family="martian")


def test_family_names_of_the_cli_are_the_families():
    from nnunet_teacher_student.commands.synth import FAMILY_NAMES
    from nnunet_teacher_student.phantom.families import FAMILIES

    assert set(FAMILY_NAMES) == set(FAMILIES)


def test_tumour_free_fraction_puts_tumour_free_cases_in_every_split(tmp_path):
    from nnunet_teacher_student.phantom.datasets import tumour_free_indices

    assert tumour_free_indices(10, 0.1) == {0} and tumour_free_indices(24, 0.1) == {0, 13}
    assert tumour_free_indices(5, 0.0) == set()
    write_phantom_datasets(
        PhantomSettings(
            tmp_path / "w",
            12,
            n_strong=4,
            n_weak=4,
            n_test=4,
            seed=2,
            preset="tiny",
            raw_dir=tmp_path / "raw",
            tumour_free=0.25,
            progress=False,
        )
    )
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    for split in ("strong", "weak", "test"):
        counts = [m["n_tumours"] for m in manifest.values() if m["split"] == split]
        assert sum(n == 0 for n in counts) == 1, (split, counts)
    free_weak = next(c for c, m in manifest.items() if m["split"] == "weak" and m["n_tumours"] == 0)
    _, boxes = WeakSet(tmp_path / "w" / "weak").read_case(free_weak)
    assert boxes.boxes == []
    with pytest.raises(InputError, match="tumour-free fraction"):
        write_phantom_datasets(
            PhantomSettings(
                tmp_path / "x",
                13,
                n_strong=2,
                raw_dir=tmp_path / "raw",
                tumour_free=1.0,
                progress=False,
            )
        )


def test_synth_command_line_gives_the_phantom_settings():
    from nnunet_teacher_student.cli import build_parser
    from nnunet_teacher_student.commands.synth import phantom_settings_from_args

    args = build_parser().parse_args(
        ["synth", "-o", "w", "-d", "12", "--preset", "tiny", "--family", "copd", "--weak", "3"]
    )
    assert phantom_settings_from_args(args) == PhantomSettings(
        Path("w"), 12, n_weak=3, preset="tiny", family="copd"
    )
    args = build_parser().parse_args(["synth", "-o", "w", "-d", "12"])
    assert phantom_settings_from_args(args) == PhantomSettings(Path("w"), 12)
