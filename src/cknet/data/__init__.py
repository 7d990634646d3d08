"""Data: image loading and preprocessing, R2Gen-format datasets, label files."""

from cknet.data.annotation import AnnotationDataset, read_annotation, training_transform
from cknet.data.images import evaluation_transform, load_image, prepare_images
from cknet.data.labels import load_label_csv, load_mesh_labels

__all__ = [
    "AnnotationDataset",
    "evaluation_transform",
    "load_image",
    "load_label_csv",
    "load_mesh_labels",
    "prepare_images",
    "read_annotation",
    "training_transform",
]
