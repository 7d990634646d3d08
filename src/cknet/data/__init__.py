"""Data: image loading and preprocessing."""

from cknet.data.images import evaluation_transform, load_image, prepare_images

__all__ = ["evaluation_transform", "load_image", "prepare_images"]
