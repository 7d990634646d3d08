"""Dataset presets: what differs between datasets (views per study, report length,
vocabulary threshold, report cleaning), one `DatasetPreset` per dataset name in the
`DATASETS` registry. `CKNetConfig.preset(name)`, the tokenizers' cleaning rules and the
command line's ``--dataset`` read it; `register_dataset` adds yours."""

from __future__ import annotations

from dataclasses import dataclass

from cknet.registry import Registry


@dataclass(frozen=True)
class DatasetPreset:
    """What differs between datasets, in one place.

    Attributes:
        num_views: images per study (IU X-Ray: frontal and lateral).
        max_length: longest report in tokens, ``<bos>`` and ``<eos>`` included (R2Gen's).
        vocab_threshold: a word enters the vocabulary if it occurs this often in the
            training reports (R2Gen's).
        fold_whitespace: report cleaning also folds newlines, underscores and repeated
            spaces (R2Gen does for MIMIC-CXR).
    """

    num_views: int
    max_length: int
    vocab_threshold: int
    fold_whitespace: bool = False


DATASETS: Registry[DatasetPreset] = Registry("dataset preset", {
    "iu_xray": DatasetPreset(num_views=2, max_length=60, vocab_threshold=3),
    "mimic_cxr": DatasetPreset(num_views=1, max_length=100, vocab_threshold=10, fold_whitespace=True),
    # CheXpert Plus (what `cknet prepare chexpert-plus` writes): one view, MIMIC-CXR's rules
    "chexpert_plus": DatasetPreset(num_views=1, max_length=100, vocab_threshold=10, fold_whitespace=True),
})


def register_dataset(name: str, preset: DatasetPreset) -> DatasetPreset:
    """Make a dataset known by name to `CKNetConfig.preset`, the tokenizers' cleaning rules
    and the command line's ``--dataset`` (see ``docs/extending.md``).

    Args:
        name: the dataset's name, e.g. ``"chexpert_plus"``.
        preset: its views, report length, vocabulary threshold and cleaning.

    Returns:
        ``preset``.

    Raises:
        ValueError: for a preset of another type, or a built-in dataset's name.
    """
    if not isinstance(preset, DatasetPreset):
        raise ValueError(f"a dataset preset is a cknet.config.DatasetPreset, got {type(preset).__name__}")
    return DATASETS.register(name, preset)


def dataset_preset(name: str) -> DatasetPreset:
    """The `DATASETS` entry of a dataset.

    Args:
        name: its key, e.g. ``"iu_xray"``.

    Returns:
        The preset.

    Raises:
        ValueError: for a name not in `DATASETS` (the message lists them).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)} (cknet.config.DATASETS; add yours with "
                         f"cknet.register_dataset), got {name!r}")
    return DATASETS[name]
