"""Image loading and the evaluation transform: from whatever a user has to model input.

`load_image` reads one image (a PNG/JPEG path, a PIL image in any mode, a numpy array
or a tensor) as a float ``(3, H, W)`` tensor in [0, 1]:

- 8-bit data is divided by 255;
- 16-bit and 32-bit integer data (PIL modes ``I;16``, ``I``; uint16 arrays) and float
  data outside [0, 1] are rescaled by their own minimum and maximum, so that a 12-bit
  radiograph stored in 16 bits is not clipped (``Image.convert("RGB")`` would clip it);
- grey levels are repeated over three channels; an alpha channel is dropped.

`prepare_images` turns a list of studies into the ``(B, V, 3, S, S)`` batch with the
evaluation transform (`cknet.data.transforms`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from cknet.config import CKNetConfig
from cknet.data.transforms import evaluation_transform

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
ImageLike = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821


def _rescale(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros_like(array)
    return (array - low) / (high - low)


def _from_array(array: np.ndarray, what: str) -> torch.Tensor:
    """``(H, W)``, ``(H, W, 1|3|4)`` array -> float ``(3, H, W)`` in [0, 1]."""
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{what} has unsupported dtype {array.dtype}; expected uint8, uint16 or float")
    shape = array.shape
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, :3] if array.shape[2] != 1 else array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or 0 in array.shape:
        raise ValueError(f"{what} has shape {shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating) and array.min() >= 0.0 and array.max() <= 1.0:
        scaled = array.astype(np.float32)
    else:
        scaled = _rescale(array)
    if not np.isfinite(scaled).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    tensor = torch.from_numpy(np.ascontiguousarray(scaled))
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0).expand(3, -1, -1)
    else:
        tensor = tensor.permute(2, 0, 1)
    return tensor.contiguous()


def _from_pil(image: Any, what: str) -> torch.Tensor:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _from_array(np.asarray(image), what)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return _from_array(np.asarray(image), what)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _from_dicom(path: Path) -> torch.Tensor:
    """A DICOM radiograph: stored values, modality rescale, MONOCHROME1 inverted."""
    try:
        import pydicom
    except ImportError:
        raise ImportError(
            f"{path} is a DICOM file: install the dicom extra (pip install 'cknet[dicom]')"
        ) from None
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
    except Exception as err:
        raise ValueError(f"{path} is not a readable DICOM image: {err}") from None
    slope = float(getattr(dataset, "RescaleSlope", 1.0))
    pixels = pixels * slope + float(getattr(dataset, "RescaleIntercept", 0.0))
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels  # MONOCHROME1 stores bright as low values
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[0]  # a multi-frame file: its first frame
    return _from_array(_rescale(pixels), f"DICOM image {path}")


MAX_IMAGE_PIXELS = 64_000_000
"""The largest image file cknet decodes, in pixels (8000 x 8000; radiographs are at most
about 4000 x 4000): a larger one is refused from its header, before its pixels are
decoded into memory. Raise it with the environment variable ``CKNET_MAX_IMAGE_PIXELS``
or by setting this attribute."""


def _pixel_limit() -> int:
    value = os.environ.get("CKNET_MAX_IMAGE_PIXELS")
    if value is None:
        return MAX_IMAGE_PIXELS
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"CKNET_MAX_IMAGE_PIXELS must be a whole number of pixels, got {value!r}") from None


def load_image(source: ImageLike) -> torch.Tensor:
    """Read one image as a float ``(3, H, W)`` tensor in [0, 1].

    Args:
        source: a file path (PNG, JPEG, ...; DICOM with the ``dicom`` extra, rescaled by
            its slope and intercept, MONOCHROME1 inverted), a PIL image (modes L, I;16,
            I, F, RGB, RGBA, P, ...), a numpy array ``(H, W)`` / ``(H, W, C)`` (uint8,
            uint16, float) or a tensor ``(H, W)`` / ``(C, H, W)``.

    Raises:
        FileNotFoundError: for a path that does not exist, or a symbolic link that
            cannot be followed (a loop, a missing target).
        ImportError: for a DICOM file without pydicom installed (says what to install).
        ValueError: for a file that is not a readable image or is larger than
            `MAX_IMAGE_PIXELS`, or an array/tensor of an unsupported shape or dtype; the
            message names the input.
    """
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            if path.is_symlink():
                try:
                    path.resolve(strict=True)
                except (OSError, RuntimeError) as err:
                    raise FileNotFoundError(f"image {path} is a symbolic link that cannot be followed "
                                            f"(a loop or a missing target: {err})") from None
            raise FileNotFoundError(f"image file not found: {path}")
        if _is_dicom(path):
            return _from_dicom(path)
        limit = _pixel_limit()
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limit:
                    raise _TooLarge(f"{path} is {width} x {height} pixels, more than the {limit:,} cknet "
                                    f"decodes (set CKNET_MAX_IMAGE_PIXELS to read it anyway)")
                image.load()
        except _TooLarge as err:
            raise ValueError(str(err)) from None
        except Exception as err:  # Pillow raises many kinds for a malformed file
            raise ValueError(f"{path} is not a readable image ({type(err).__name__}: {err})") from None
        return _from_pil(image, f"image {path}")
    if isinstance(source, Image.Image):
        return _from_pil(source, f"PIL image (mode {source.mode})")
    if isinstance(source, np.ndarray):
        return _from_array(source, "the array")
    if isinstance(source, torch.Tensor):
        tensor = source.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # numpy has no bfloat16
        if tensor.dim() == 3 and tensor.shape[0] in (1, 3, 4):
            tensor = tensor.permute(1, 2, 0)
        return _from_array(tensor.numpy(), f"the tensor of shape {tuple(source.shape)}, read as (H, W, C),")
    raise ValueError(
        f"cannot read an image from {type(source).__name__}; expected a path, a PIL image, "
        f"a numpy array or a tensor"
    )


def _study_views(study: Any) -> list[Any]:
    if isinstance(study, (str, os.PathLike)) and Path(study).is_dir():
        files = sorted(p for p in Path(study).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"study folder {study} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if isinstance(study, (list, tuple)):
        return list(study)
    return [study]


def prepare_images(
    studies: Any,
    config: CKNetConfig,
    repeat_single_view: bool = False,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Load and preprocess studies into a model-ready batch.

    Args:
        studies: one study, or a list of studies. A study is one image (path, PIL image,
            array, tensor), a list of images (one per view, in the model's view order:
            frontal then lateral for IU X-Ray), or a folder whose image files, sorted by
            name, are its views.
        config: the model's config (views, image size, normalisation).
        repeat_single_view: use a lone view for every view slot of a multi-view model
            (an approximation: the model was trained on distinct views).
        names: study names for error messages (default: their positions).

    Returns:
        ``(B, V, 3, image_size, image_size)`` float32.

    A view much smaller than the model's input (under a quarter of ``image_size`` on a
    side) is enlarged with a warning: the report of such an image says little.

    Raises:
        ValueError: for a study with the wrong number of views, or an unreadable image
            (the message names the study).
        FileNotFoundError: for a missing image file (the message names the study).
    """
    if isinstance(studies, (list, tuple)) and len(studies) == 0:
        raise ValueError("studies is empty")
    batch = list(studies) if isinstance(studies, (list, tuple)) else [studies]
    prepared = []
    for index, study in enumerate(batch):
        name = repr(names[index]) if names is not None else index
        views = _study_views(study)
        if len(views) == 1 and config.num_views > 1 and repeat_single_view:
            views = views * config.num_views
        if len(views) != config.num_views:
            hint = ""
            if len(views) == 1:
                hint = (" (group a study's views in a list, e.g. [[frontal, lateral]], or pass "
                        "repeat_single_view=True, or --repeat-single-view to cknet generate, to "
                        "reuse one view)")
            raise ValueError(
                f"study {name} has {len(views)} view(s) but the model takes "
                f"{config.num_views}{hint}"
            )
        prepared.append(torch.stack([_prepared_view(v, config, name) for v in views]))
    return torch.stack(prepared)


def _prepared_view(view: Any, config: CKNetConfig, study: Any) -> torch.Tensor:
    """One view through `load_image` and the evaluation transform; errors name the study."""
    try:
        image = load_image(view)
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"study {study}: {err}") from None
    if min(image.shape[1:]) < config.image_size / 4:
        warnings.warn(f"study {study}: an image of {image.shape[2]}x{image.shape[1]} px is enlarged to "
                      f"{config.image_size} px; a report of it says little", stacklevel=3)
    return evaluation_transform(image, config)


class _TooLarge(Exception):
    """An image over the pixel limit (kept apart from Pillow's own errors)."""
