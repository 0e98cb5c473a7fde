"""Size-balanced case sampling: cases listed in the dataset.json key ``nnts_sampling_weights``
(``{case: repeats}``, written by ``nnts make-student-dataset --size-balance``) are drawn
``repeats`` times as often during training. Validation is unchanged."""

from __future__ import annotations

from ..nnunet.raw_dataset import SAMPLING_WEIGHTS_KEY


def repeat_cases(cases: list[str], weights: dict[str, int]) -> list[str]:
    """Each case repeated ``weights.get(case, 1)`` times (at least once), order kept."""
    out = []
    for c in cases:
        out.extend([c] * max(1, int(weights.get(c, 1))))
    return out


class SizeBalancedSamplingMixin:
    """Upsample training cases according to the dataset's sampling weights, when it has them."""

    def do_split(self):
        tr_keys, val_keys = super().do_split()
        weights = self.dataset_json.get(SAMPLING_WEIGHTS_KEY)
        if weights:
            tr_keys = repeat_cases(list(tr_keys), weights)
            self.print_to_log_file(
                f"size-balanced sampling: {len(tr_keys)} training entries "
                f"from {len(set(tr_keys))} cases"
            )
        return tr_keys, val_keys
