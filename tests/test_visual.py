import urllib.error

import pytest
import torch
import torchvision

from cknet import VisualExtractor
from cknet.modules.visual import Backbone


@pytest.mark.parametrize("backbone, channels", [("resnet18", 512), ("densenet121", 1024),
                                                ("mobilenet_v3_small", 576)])
def test_patch_shapes(backbone, channels):
    extractor = VisualExtractor(backbone, d_model=32, dropout=0.0).eval()
    images = torch.randn(2, 2, 3, 224, 224)
    maps, patches = extractor.maps(images), extractor(images)
    assert extractor.num_channels == channels
    assert maps.shape == (2, 2, channels, 7, 7)
    assert patches.shape == (2, 98, 32)  # two views of 7x7 patches, concatenated
    torch.testing.assert_close(extractor.project(maps), patches)


def test_views_share_one_backbone_and_are_concatenated_in_order():
    extractor = VisualExtractor("resnet18", d_model=16, dropout=0.0).eval()
    frontal, lateral = torch.randn(1, 1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        both = extractor(torch.cat([frontal, lateral], 1))
        alone = [extractor(v) for v in (frontal, lateral)]
    torch.testing.assert_close(both, torch.cat(alone, 1))


def test_eval_mode_passes_images_in_chunks_with_the_maps_of_one_call():
    backbone = Backbone("resnet18")
    backbone.eval_chunk = 3
    calls = []
    backbone.trunk.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    images = torch.randn(4, 2, 3, 64, 64)
    with torch.no_grad():
        chunked = backbone.eval()(images)
        # the reference: one float64 call over the whole batch, in the default layout
        whole = backbone.trunk.double()(images.flatten(0, 1).double()).unflatten(0, (4, 2))
    assert calls == [3, 3, 2, 8]
    assert chunked.dtype == torch.float32
    scale = float(whole.abs().max())
    torch.testing.assert_close(chunked.double(), whole, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("chunk", [0, -2, 2.5, "8", True])
def test_eval_chunk_must_be_a_positive_whole_number(chunk):
    backbone = Backbone("resnet18")
    with pytest.raises(ValueError, match="eval_chunk must be a positive whole number"):
        backbone.eval_chunk = chunk
    assert backbone.eval_chunk is None


@pytest.mark.parametrize(("side", "calls"), [(224, [4, 4, 1]), (112, [9]), (500, [1] * 9), (64, [9])])
def test_default_chunks_hold_four_224_px_images_worth_of_pixels(side, calls):
    """Four images per call at 224 px, proportionally more for smaller images, at least one."""
    backbone = Backbone("resnet18").eval()
    seen = []
    backbone.trunk.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    with torch.no_grad():
        backbone(torch.randn(9, 1, 3, side, side))
    assert seen == calls
    assert backbone.chunk_size(112, 112) == 16 and backbone.chunk_size(224, 224) == 4


def test_one_chunk_gives_the_maps_of_several():
    backbone = Backbone("resnet18").eval()
    images = torch.randn(3, 1, 3, 64, 64)
    with torch.no_grad():
        backbone.eval_chunk = 1
        three_calls = backbone(images)
        backbone.eval_chunk = 64
        one_call = backbone(images)
    assert one_call.shape == (3, 1, 512, 2, 2)
    # the same maps up to float rounding (convolutions of 1 and of 3 images take other paths)
    torch.testing.assert_close(one_call, three_calls, rtol=1e-4, atol=1e-5 * float(one_call.abs().max()))


def test_training_mode_passes_the_whole_batch_for_its_batch_statistics():
    backbone = Backbone("resnet18").train()
    backbone.eval_chunk = 3
    calls = []
    backbone.trunk.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    images = torch.randn(4, 2, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(images)
        whole = backbone.trunk(images.flatten(0, 1)).unflatten(0, (4, 2))
        first_three = backbone.trunk(images.flatten(0, 1)[:3])
    assert calls == [8, 8, 3]
    torch.testing.assert_close(maps, whole)
    # batch statistics: the same images in a smaller batch give other maps
    assert not torch.allclose(first_three, whole.flatten(0, 1)[:3], atol=1e-3)


def test_densenet_trunk_equals_torchvision_features():
    extractor = VisualExtractor("densenet121", d_model=8).eval()
    reference = torchvision.models.densenet121()
    reference.features.load_state_dict(extractor.backbone.trunk[0].state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(extractor.backbone.trunk(x), torch.relu(reference.eval().features(x)))


def test_local_weights(tmp_path):
    source = torchvision.models.resnet18(num_classes=14)  # e.g. a CheXpert-trained head
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    extractor = VisualExtractor("resnet18", d_model=8, weights=path)
    torch.testing.assert_close(extractor.backbone.trunk[0].weight, source.conv1.weight)
    from safetensors.torch import save_file

    save_file(source.state_dict(), tmp_path / "w.safetensors")
    extractor = VisualExtractor("resnet18", d_model=8, weights=tmp_path / "w.safetensors")
    torch.testing.assert_close(extractor.backbone.trunk[0].weight, source.conv1.weight)


def test_wrong_local_weights(tmp_path):
    path = tmp_path / "densenet.pt"
    torch.save(torchvision.models.densenet121().state_dict(), path)
    with pytest.raises(ValueError, match="does not match backbone resnet18"):
        VisualExtractor("resnet18", weights=path)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        VisualExtractor("resnet18", weights=tmp_path / "nothing.pt")


def test_imagenet_offline_says_which_file_goes_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(OSError, match=r"resnet18-f37072fd\.pth.*checkpoints"):
        VisualExtractor("resnet18", weights="imagenet")


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        VisualExtractor("resnet7")
    with pytest.raises(ValueError, match="spatial feature map"):
        VisualExtractor("vit_b_16")
