"""A tiny generator of studies whose findings are visible, for tests of the graph stage.

Finding i is a bright blob at its own place in the image; a study shows the blobs of
its positive findings over noise, with jitter in position, size and brightness.
"""

from __future__ import annotations

import numpy as np
import torch

FINDINGS = ["effusion", "atelectasis", "cardiomegaly", "edema", "nodule"]
SENTENCES = {
    "effusion": ("There is a small pleural effusion.", "No pleural effusion."),
    "atelectasis": ("Basilar atelectasis is present.", "No atelectasis."),
    "cardiomegaly": ("The heart is enlarged with cardiomegaly.", "No cardiomegaly."),
    "edema": ("Mild interstitial edema.", "There is no edema."),
    "nodule": ("A nodule is seen in the right lung.", "No nodule."),
}


def make_studies(count: int, size: int = 64, views: int = 1, seed: int = 0, p: float = 0.4):
    """Return images ``(count, views, 3, size, size)``, labels ``(count, 5)`` and reports."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((count, len(FINDINGS))) < p).astype(np.int64)
    grid = np.linspace(0.2, 0.8, 3)
    centres = [(grid[i % 3], grid[i // 3 + (i >= 3)]) for i in range(len(FINDINGS))]
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = rng.normal(0.0, 1.0, (count, views, size, size))
    for study in range(count):
        for finding in np.nonzero(labels[study])[0]:
            cy, cx = centres[finding] + rng.normal(0, 0.03, 2)
            radius = rng.uniform(0.06, 0.1)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
            images[study] += rng.uniform(0.5, 1.0) * blob
    tensor = torch.tensor(images, dtype=torch.float32)[:, :, None].expand(-1, -1, 3, -1, -1).contiguous()
    reports = [" ".join(SENTENCES[f][0 if labels[i, j] else 1] for j, f in enumerate(FINDINGS))
               for i in range(count)]
    return tensor, labels, reports
