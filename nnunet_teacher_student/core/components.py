"""Connected components of a mask, through cc3d (connected-components-3d), in one place.

cc3d 4.1's path for boolean arrays sizes its union-find table wrongly on arrays one voxel thick along
an axis (``[[[True, False, True]]]``, 26-connectivity: "maximum length exception", whatever
``max_labels`` says); its path for integer arrays does not, so the mask goes in as a uint8 view.
"""

from __future__ import annotations

import numpy as np


def label_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Labels 1..n of the ``connectivity``-connected components of ``mask > 0`` (0: background), and n."""
    import cc3d

    binary = np.ascontiguousarray(mask > 0).view(np.uint8)
    labels, n = cc3d.connected_components(binary, connectivity=connectivity, return_N=True)
    return labels, int(n)
