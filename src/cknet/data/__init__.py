"""Data: image loading, the transforms, R2Gen-format datasets, label files, synthetic studies.

- `images`: `load_image` (paths, PIL images, arrays, DICOM) and `prepare_images`;
- `transforms`: `normalize` and the evaluation and training transforms;
- `annotation`: `read_annotation` and `AnnotationDataset` (R2Gen's ``annotation.json``);
- `labels`: finding labels from CheXpert-style CSVs and IU X-Ray's MeSH tags;
- `records`: `StudyDataset`, studies from any records (dicts, Hugging Face rows);
- `studies`: the study form every dataset of studies yields;
- `prepare`: MIMIC-CXR, IU X-Ray and CheXpert Plus downloads -> R2Gen's layout;
- `rexrank`: ReXrank's test sets and prediction files;
- `collate`: batches of studies;
- `synthetic`: rendered radiographs with known findings (`cknet demo`).
"""

from cknet.data.annotation import AnnotationDataset, read_annotation
from cknet.data.images import load_image, prepare_images
from cknet.data.labels import load_label_csv, load_mesh_labels
from cknet.data.records import StudyDataset
from cknet.data.transforms import evaluation_transform, normalize, training_transform

__all__ = [
    "AnnotationDataset",
    "StudyDataset",
    "evaluation_transform",
    "load_image",
    "load_label_csv",
    "load_mesh_labels",
    "normalize",
    "prepare_images",
    "read_annotation",
    "training_transform",
]
