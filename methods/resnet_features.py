"""pixelNeRF's multi-scale ResNet image encoder, shared by pixelNeRF and NHP (which reuses pixelNeRF's encoder), and
the training set-up of a method built on it (:class:`ResNetEncoderTraining`).

A torchvision ResNet-18/34 cut after its stem and the first ``num_layers - 1`` residual stages; every stage's map is
upsampled (bilinear, align_corners) to the stem's 1/2 resolution and the maps are concatenated (64, 64, 128, 256,
512 channels per stage). ImageNet weights load from a local torchvision state dict (:meth:`load_torchvision`);
without one the encoder trains from scratch, and :func:`pretrained_init` says which in the method's hparams.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

LATENT = {1: 64, 2: 128, 3: 256, 4: 512, 5: 1024}  # concatenated channels by num_layers (ResNet-18/34)
EXAMPLE_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth"}


class ResNetFeatures(nn.Module):
    """Stem + the first ``num_layers - 1`` residual stages of a torchvision ResNet, multi-scale concatenated.

    ``owner`` (the method id) prefixes error messages; ``image_scale`` resizes the input first (area when
    shrinking, bilinear when growing)."""

    def __init__(self, backbone: str = "resnet34", num_layers: int = 4, use_first_pool: bool = True,
                 image_scale: float = 1.0, *, owner: str):
        super().__init__()
        import torchvision

        if backbone not in EXAMPLE_FILES:
            raise ValueError(f"{owner}: backbone must be resnet18 or resnet34, got {backbone!r}")
        if num_layers not in LATENT:
            raise ValueError(f"{owner}: num_layers must be 1..5, got {num_layers}")
        net = getattr(torchvision.models, backbone)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.stages = num_layers - 1
        for i in range(1, num_layers):
            self.add_module(f"layer{i}", getattr(net, f"layer{i}"))
        self.use_first_pool = use_first_pool
        self.image_scale = float(image_scale)
        self.backbone, self.owner = backbone, owner
        self.latent_size = LATENT[num_layers]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) -> (B, latent_size, H/2, W/2) (sizes after ``image_scale``)."""
        if self.image_scale != 1.0:
            x = F.interpolate(x, scale_factor=self.image_scale, mode="area" if self.image_scale < 1 else "bilinear",
                              recompute_scale_factor=True)
        x = self.relu(self.bn1(self.conv1(x)))
        feats = [x]
        for i in range(1, self.stages + 1):
            if i == 1 and self.use_first_pool:
                x = self.maxpool(x)
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size, mode="bilinear", align_corners=True) for f in feats[1:]]
        return torch.cat(feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def resnet_parameters(self) -> list[nn.Parameter]:
        """The ResNet's own parameters (what ImageNet weights set), not those of layers a subclass adds."""
        return [p for n, p in self.named_parameters() if n.startswith(self._resnet_prefixes())]

    def _resnet_prefixes(self) -> tuple[str, ...]:
        return ("conv1.", "bn1.") + tuple(f"layer{i}." for i in range(1, self.stages + 1))

    def load_torchvision(self, path: str) -> int:
        """Load the used part of a torchvision ResNet state dict (.pth); returns the number of tensors loaded.
        Only the ResNet's own tensors are loaded (a subclass's extra layers keep their init)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{self.owner}: encoder_weights={path!r} does not exist (expected a torchvision "
                                    f"{self.backbone} state dict, e.g. {EXAMPLE_FILES[self.backbone]})")
        sd = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        prefixes = self._resnet_prefixes()
        own = {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}
        extra = sorted(k for k in sd if k.startswith(prefixes) and k not in own)
        if extra:
            raise ValueError(f"{self.owner}: {path} has tensors this {self.backbone} encoder lacks ({extra[:3]}...): "
                             f"weights of another backbone? (config backbone=resnet18/resnet34)")
        wanted = {k: v for k, v in sd.items() if k in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"{self.owner}: {path} is not a matching torchvision ResNet state dict; missing "
                             f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
        bad = [k for k, v in wanted.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"{self.owner}: {path}: shape mismatch for {bad[:5]} (wrong backbone? config backbone="
                             f"resnet18/resnet34)")
        self.load_state_dict(wanted, strict=False)
        return len(wanted)


def pretrained_init(encoder: ResNetFeatures, weights: str | None) -> str:
    """Load ``weights`` (a torchvision file) into ``encoder`` when given; returns how the encoder started."""
    if not weights:
        return "random (no encoder_weights; the paper uses ImageNet weights)"
    n = encoder.load_torchvision(weights)
    return f"imagenet: {weights} ({n} tensors)"


class ResNetEncoderTraining:
    """Mixin for a :class:`~bench.methods.learned.LearnedMethod` whose ``model.encoder`` is a :class:`ResNetFeatures`
    and whose config has ``encoder_weights``, ``freeze_encoder`` and ``lr``: ImageNet init, and one Adam over every
    parameter except, with ``freeze_encoder``, the ResNet's (layers on top of it still train), which then also stays
    in eval mode (BatchNorm statistics frozen)."""

    def init_encoder(self) -> str:
        return pretrained_init(self.model.encoder, self.config["encoder_weights"])

    def build_optimizer(self) -> torch.optim.Optimizer:
        frozen = {id(p) for p in self.model.encoder.resnet_parameters()} if self.config["freeze_encoder"] else set()
        params = [p for p in self.model.parameters() if id(p) not in frozen]
        return torch.optim.Adam(params, lr=float(self.config["lr"]))

    def begin_step(self, lr) -> None:
        super().begin_step(lr)
        if self.config["freeze_encoder"]:
            self.model.encoder.eval()
