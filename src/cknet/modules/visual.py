"""`VisualExtractor`: a torchvision CNN that turns each study's views into patch features.

Equation (1) of the paper: {v^s_1, ..., v^s_Ns} = f_img(I). The CNN's last feature map
``(C, h, w)`` (7x7 for a 224x224 input) is flattened into h*w patch vectors and projected
from C to d_model channels. The views of a study (IU X-Ray's frontal and lateral) go
through ONE shared backbone and their patch sequences are concatenated, giving
``V * h * w`` patches (98 for two views at 224 px).

A backbone is a torchvision model name, or a name in the `BACKBONES` registry
(`register_backbone`): your own CNN, any ``nn.Module`` that maps ``(N, 3, H, W)`` images
to ``(N, C, h, w)`` maps (C is found by running it once on a 64 x 64 image, so it must
accept one), built by a factory from ``CKNetConfig.backbone_weights``.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from cknet.persistence.weights import read_torch_file
from cknet.registry import Registry

_HEAD_CHILDREN = ("avgpool", "fc", "classifier", "head", "heads", "flatten")
EVAL_CHUNK_PIXELS = 4 * 224 * 224
"""Pixels per trunk call in eval mode when `Backbone.eval_chunk` is None (the default)."""


class Backbone(nn.Module):
    """A torchvision classification model without its pooling and classifier (or your
    own registered CNN), applied to every view of a study.

    Args:
        name: a torchvision model name (``"densenet121"``, ``"resnet101"``,
            ``"resnet18"``, ``"efficientnet_b0"``, ...) whose last feature map is spatial,
            or a name of `register_backbone`.
        weights: ``None`` (random initialisation), ``"imagenet"`` (torchvision's default
            weights, read from the torch hub cache or downloaded) or the path of a local
            state dict (``.safetensors``, or a torch file loaded with ``weights_only``).

    Shapes:
        input: images ``(B, V, 3, H, W)``.
        output: feature maps ``(B, V, C, h, w)``; C is ``num_channels``.

    In eval mode batch norm uses its running statistics, so the images are independent
    of each other: they pass the trunk in chunks (`eval_chunk`; by default as many
    images as hold ``EVAL_CHUNK_PIXELS``, four at 224 px, sixteen at 112), in the
    channels-last memory format. The maps are the same as in one call up to float
    rounding; chunks bound the peak memory of the activations, and channels-last is
    18-26% faster for ResNets and 11% for DenseNet-121 on an AVX2 CPU
    (``docs/performance.md``). In training mode the batch statistics need every image at
    once, so the batch passes whole, as given.

    Raises:
        ValueError: for an unknown backbone or one without a spatial feature map.
        OSError: when ImageNet weights are neither cached nor downloadable; the message
            names the file and the folder to place it in.
    """

    def __init__(self, name: str = "densenet121", weights: str | os.PathLike[str] | None = None):
        super().__init__()
        self.name = name
        self.eval_chunk = None
        if name in BACKBONES:
            trunk = BACKBONES[name](weights)
            if not isinstance(trunk, nn.Module):
                raise ValueError(f"the factory of backbone {name!r} returned a {type(trunk).__name__}, "
                                 f"not an nn.Module")
            self.trunk = trunk
        else:
            self.trunk = _torchvision_trunk(name, weights)
        self.num_channels = self._probe_channels()

    @property
    def eval_chunk(self) -> int | None:
        """Images per trunk call in eval mode; None (the default): as many as hold
        ``EVAL_CHUNK_PIXELS`` (at least one). Larger trades memory for fewer calls (e.g.
        on a GPU with memory to spare)."""
        return self._eval_chunk

    @eval_chunk.setter
    def eval_chunk(self, images: int | None) -> None:
        if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
            raise ValueError(f"Backbone.eval_chunk must be a positive whole number of images or None "
                             f"(by image size), got {images!r}")
        self._eval_chunk = images

    def chunk_size(self, height: int, width: int) -> int:
        """Images per trunk call in eval mode (see `eval_chunk`).

        Args:
            height: the images' height in pixels.
            width: their width.

        Returns:
            ``eval_chunk`` when set, else ``EVAL_CHUNK_PIXELS // (height * width)``, at
            least 1.
        """
        if self._eval_chunk is not None:
            return self._eval_chunk
        return max(1, EVAL_CHUNK_PIXELS // (height * width))

    def _probe_channels(self) -> int:
        was_training = self.trunk.training
        self.trunk.eval()
        message = (f"backbone {self.name!r} does not end in a spatial feature map that can be "
                   f"taken without its classifier; use a CNN such as densenet121 or resnet101")
        try:
            with torch.no_grad():
                out = self.trunk(torch.zeros(1, 3, 64, 64))
        except (RuntimeError, AssertionError, ValueError) as err:
            raise ValueError(f"{message} ({err})") from None
        self.trunk.train(was_training)
        if out.dim() != 4:
            raise ValueError(f"{message} (its trunk returns shape {tuple(out.shape)})")
        return int(out.shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"images must have shape (B, V, 3, H, W), got {tuple(images.shape)}")
        batch, views = images.shape[:2]
        flat = images.flatten(0, 1)  # (B*V, 3, H, W)
        if self.trunk.training:
            maps = self.trunk(flat)  # (B*V, C, h, w)
        else:
            chunks = [self.trunk(chunk.contiguous(memory_format=torch.channels_last))
                      for chunk in flat.split(self.chunk_size(*flat.shape[-2:]))]
            maps = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        return maps.unflatten(0, (batch, views))  # (B, V, C, h, w)


class VisualExtractor(nn.Module):
    """Patch features of a study: a shared `Backbone` over its views, flattened and
    projected.

    Args:
        backbone: a torchvision model name (see `Backbone`), or a `Backbone` that another
            module owns (the graph model's frozen CNN under
            ``CKNetConfig.share_backbone``): used, not registered, so its weights are
            stored, moved and frozen by its owner.
        d_model: size of the projected patch features.
        weights: initial backbone weights (see `Backbone`).
        dropout: dropout after the projection.

    Shapes:
        input: images ``(B, V, 3, H, W)``.
        output: patches v_s ``(B, V*h*w, d_model)``, view-major (equation 1).

    `maps` and `project` are the two halves of the forward pass: a model that caches
    the backbone's maps (a frozen backbone) projects them later.
    """

    def __init__(
        self,
        backbone: str | Backbone = "densenet121",
        d_model: int = 512,
        weights: str | os.PathLike[str] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if isinstance(backbone, Backbone):
            object.__setattr__(self, "backbone", backbone)  # bypasses nn.Module's registration
        else:
            self.backbone = Backbone(backbone, weights)
        self.num_channels = self.backbone.num_channels
        self.projection = nn.Linear(self.num_channels, d_model)
        self.dropout = nn.Dropout(dropout)

    def maps(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's feature maps.

        Args:
            images: ``(B, V, 3, H, W)``.

        Returns:
            ``(B, V, C, h, w)``.
        """
        return self.backbone(images)

    def project(self, maps: torch.Tensor) -> torch.Tensor:
        """Patch features from backbone maps (e.g. maps cached once with the backbone frozen).

        Args:
            maps: ``(B, V, C, h, w)``.

        Returns:
            ``(B, V*h*w, d_model)``, view-major.
        """
        patches = maps.flatten(3).transpose(2, 3).flatten(1, 2)  # (B, V*h*w, C), views concatenated
        return self.dropout(self.projection(patches))  # v_s, eq. (1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.maps(images))  # f_img(I), eq. (1)


BACKBONES: Registry[Callable[[str | os.PathLike[str] | None], nn.Module]] = Registry("backbone")


def register_backbone(name: str, factory: Callable[[str | os.PathLike[str] | None], nn.Module] | None = None
                      ) -> Callable:
    """Make your own CNN a backbone by name (``CKNetConfig(backbone=name)``, ``cknet
    pretrain-graph --backbone name``); returns ``factory``. Without ``factory``, a
    decorator: ``@register_backbone("mine")`` above the function that builds it. Register
    it again in the process that loads a saved model, as for a knowledge source.

    Args:
        name: the name the config keeps (not a torchvision model's name).
        factory: ``factory(weights)`` builds the module from ``CKNetConfig.backbone_weights``
            (None, ``"imagenet"`` or a path: yours to interpret); it maps ``(N, 3, H, W)``
            images to ``(N, C, h, w)`` maps.

    Raises:
        ValueError: for a torchvision model's name, or a factory that is not callable.
    """
    if factory is None:
        return lambda function: register_backbone(name, function)
    if name in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"{name!r} is a torchvision model's name; give your backbone another")
    if not callable(factory):
        raise ValueError(f"register_backbone takes a function that builds the module, "
                         f"got {type(factory).__name__}")
    return BACKBONES.register(name, factory)


def _torchvision_trunk(name: str, weights: str | os.PathLike[str] | None) -> nn.Module:
    """A torchvision classification model without its pooling and classifier."""
    model = _build_backbone(name, weights)
    children = []
    for child_name, child in model.named_children():
        if child_name in _HEAD_CHILDREN:
            break
        children.append(child)
    if isinstance(model, torchvision.models.DenseNet):
        children.append(nn.ReLU())  # torchvision's DenseNet applies it in forward()
    return nn.Sequential(*children)


def _build_backbone(name: str, weights: str | os.PathLike[str] | None) -> nn.Module:
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ValueError(
            f"unknown backbone {name!r}: expected a torchvision classification model such "
            f"as densenet121 or resnet101, or a name registered with cknet.register_backbone "
            f"(registered: {sorted(BACKBONES)})"
        )
    if weights is None:
        return torchvision.models.get_model(name, weights=None)
    if weights == "imagenet":
        return _imagenet_backbone(name)
    model = torchvision.models.get_model(name, weights=None)
    _load_local_weights(model, os.fspath(weights), name)
    return model


def _imagenet_backbone(name: str) -> nn.Module:
    default = torchvision.models.get_model_weights(name).DEFAULT
    filename = os.path.basename(default.url)
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        return torchvision.models.get_model(name, weights=default)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise OSError(
            f"could not get the ImageNet weights of {name} ({err}). Download {default.url} "
            f"on a machine with internet access and place it as {os.path.join(folder, filename)} "
            f"(the torch hub cache; TORCH_HOME moves it), or pass the path of a local "
            f"state dict as backbone_weights"
        ) from err


def _load_local_weights(model: nn.Module, path: str, name: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = read_torch_file(path, f"backbone weights {path}")
        except ValueError as err:
            raise ValueError(
                f"{err}: not a plain state dict. If you trust its source, convert it once where you made "
                f"it: load it there and save the state dict with "
                f"safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    def is_head(key: str) -> bool:
        return key.split(".")[0] in _HEAD_CHILDREN

    # The classifier is not used (and may have another number of classes): skip it.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not is_head(k)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match backbone {name}: {err}") from None
    missing = [k for k in result.missing_keys if not is_head(k)]
    unexpected = result.unexpected_keys
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match backbone {name}: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
