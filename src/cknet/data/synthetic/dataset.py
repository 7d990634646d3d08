"""`SyntheticDataset`: rendered studies with their reports and finding labels,
deterministic per seed, served like `cknet.data.AnnotationDataset`'s items."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cknet.config import CKNetConfig
from cknet.data.synthetic.findings import FINDINGS
from cknet.data.synthetic.render import render_study
from cknet.data.synthetic.reports import SyntheticReports
from cknet.data.transforms import normalize


class SyntheticDataset(Dataset):
    """Rendered studies with their reports and finding labels, deterministic per seed.

    Items are dicts like `cknet.data.AnnotationDataset`'s: ``id``, ``images``
    ``(V, 3, S, S)`` normalised with the config, ``report``, ``labels`` ``(17,)``.

    Args:
        count: number of studies.
        config: image size, views and normalisation.
        seed: study i is drawn from a generator seeded with ``(seed, i)``.
        blank: draw empty images (the same reports): a control for "does the model read
            the images".
        reports: the finding sampler and report writer (default `SyntheticReports()`).
        keep_rendered: keep each study's views in memory once drawn (``V * S * S * 4``
            bytes per study), so that later epochs do not draw them again.
    """

    def __init__(self, count: int, config: CKNetConfig, seed: int = 0, blank: bool = False,
                 reports: SyntheticReports | None = None, keep_rendered: bool = False) -> None:
        self.count, self.config, self.seed, self.blank = count, config, seed, blank
        self.keep_rendered = keep_rendered
        self.rendered: dict[int, np.ndarray] = {}
        self.writer = reports if reports is not None else SyntheticReports()  # samples findings
        self.findings = [self.writer.sample(np.random.default_rng((seed, i, 0))) for i in range(count)]
        self.texts: list[str] | None = None
        self.ids: list[str] | None = None

    @classmethod
    def from_studies(
        cls,
        findings: Sequence[Sequence[str]],
        reports: Sequence[str],
        config: CKNetConfig,
        seed: int = 0,
        ids: Sequence[str] | None = None,
        blank: bool = False,
        keep_rendered: bool = False,
    ) -> SyntheticDataset:
        """Render given studies beside given reports, e.g. real reports with
        `findings_from_mesh` of their indexing.

        Args:
            findings: per study, the names from `FINDINGS` to draw.
            reports: per study, the report served with it.
            config: image size, views and normalisation.
            seed: seeds the rendering (study i with ``seed * 1_000_003 + i``).
            ids: per study, its id (default ``synthetic-SEED-I``).
            blank: draw empty images instead.
            keep_rendered: keep each study's views in memory once drawn.

        Returns:
            The dataset.

        Raises:
            ValueError: for lists of different lengths or an unknown finding.
        """
        if len(findings) != len(reports) or (ids is not None and len(ids) != len(reports)):
            raise ValueError(
                f"findings ({len(findings)}), reports ({len(reports)})"
                f"{'' if ids is None else f' and ids ({len(ids)})'} must have one entry per study"
            )
        unknown = sorted({f for study in findings for f in study} - set(FINDINGS))
        if unknown:
            raise ValueError(f"unknown findings {unknown}; known: {', '.join(FINDINGS)}")
        data = cls(0, config, seed, blank, keep_rendered=keep_rendered)
        data.count, data.findings, data.texts = len(reports), [list(f) for f in findings], list(reports)
        data.ids = None if ids is None else list(ids)
        return data

    def __len__(self) -> int:
        return self.count

    def report(self, index: int) -> str:
        """A study's report, without rendering its images.

        Args:
            index: the study.
        """
        if self.texts is not None:
            return self.texts[index]
        return SyntheticReports.write(self.findings[index], np.random.default_rng((self.seed, index, 1)))

    def reports(self) -> list[str]:
        """Every study's report, in order, without rendering images."""
        return [self.report(i) for i in range(self.count)]

    def study_ids(self) -> list[str]:
        """Every study's id, in order."""
        return [self.study_id(i) for i in range(self.count)]

    def study_id(self, index: int) -> str:
        """A study's id.

        Args:
            index: the study.
        """
        return self.ids[index] if self.ids is not None else f"synthetic-{self.seed}-{index}"

    def label_matrix(self) -> np.ndarray:
        """``(count, 17)`` labels without rendering any image."""
        return np.stack([SyntheticReports.labels(f) for f in self.findings])

    def render(self, index: int) -> np.ndarray:
        """A study's views as `render_study` draws them (grey 0.5 when ``blank``).

        Args:
            index: the study.

        Returns:
            ``(V, S, S)`` float32 in [0, 1].
        """
        if index in self.rendered:
            return self.rendered[index]
        size, views = self.config.image_size, self.config.num_views
        if self.blank:
            pixels = np.full((views, size, size), 0.5, dtype=np.float32)
        else:
            pixels = render_study(self.findings[index], seed=self.seed * 1_000_003 + index, size=size,
                                  views=views)
        if self.keep_rendered:
            self.rendered[index] = pixels
        return pixels

    def __getitem__(self, index: int) -> dict:
        pixels = self.render(index)
        images = normalize(torch.from_numpy(pixels)[:, None].expand(-1, 3, -1, -1), self.config)
        return {"id": self.study_id(index), "images": images.float(),
                "report": self.report(index),
                "labels": torch.from_numpy(SyntheticReports.labels(self.findings[index]))}
