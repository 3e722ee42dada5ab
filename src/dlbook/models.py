"""Small models that several chapters share.

Every model here is an ordinary ``nn.Module``; chapters build on them and compare them in one loop.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "identity": nn.Identity}


@dataclass
class MLPConfig:
    """A multi-layer perceptron: ``sizes = [in, hidden..., out]``."""

    sizes: Sequence[int] = (784, 128, 10)
    activation: str = "relu"
    dropout: float = 0.0        # applied after each hidden activation
    batchnorm: bool = False     # BatchNorm1d before each hidden activation

    @classmethod
    def tiny(cls) -> "MLPConfig":
        return cls(sizes=(784, 32, 10))

    @classmethod
    def mnist(cls) -> "MLPConfig":
        return cls(sizes=(784, 256, 128, 10))


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout], repeated; the last layer is linear (logits)."""

    def __init__(self, config: MLPConfig | None = None, **overrides):
        super().__init__()
        config = config or MLPConfig()
        unknown = set(overrides) - set(config.__dataclass_fields__)
        if unknown:
            raise TypeError(f"MLPConfig has no field(s) {sorted(unknown)}; fields: {list(config.__dataclass_fields__)}")
        config = replace(config, **overrides)  # never mutate the caller's config
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if len(config.sizes) < 2:
            raise ValueError(f"sizes needs at least [in, out], got {list(config.sizes)}")
        self.config = config
        layers: list[nn.Module] = []
        pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
        for i, (n_in, n_out) in enumerate(pairs):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(pairs) - 1:
                if config.batchnorm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(ACTIVATIONS[config.activation]())
                if config.dropout > 0:
                    layers.append(nn.Dropout(config.dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, ...) -> (B, in) -> (B, out)

    def hidden(self, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """The activations after hidden layer ``layer`` (0 = first), e.g. to show learned features."""
        h = x.flatten(1)
        seen = -1
        for module in self.net:
            h = module(h)
            if isinstance(module, tuple(ACTIVATIONS.values())):
                seen += 1
                if seen == layer:
                    return h
        raise IndexError(f"the model has {seen + 1} hidden layers; asked for layer {layer}")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_overrides(config, overrides: dict) -> None:
    unknown = set(overrides) - set(config.__dataclass_fields__)
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field(s) {sorted(unknown)}; "
                        f"fields: {list(config.__dataclass_fields__)}")


POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass
class LeNetConfig:
    """LeNet-5 (LeCun et al., 1998): two stages of convolution and 2x2 pooling, then dense layers.

    The original read 32x32 images; on 28x28 MNIST the first convolution pads by 2, which gives
    the same 28x28 -> 14x14 -> 10x10 -> 5x5 maps. The original used scaled tanh units and a
    trainable average ("subsampling"); ``classic()`` keeps tanh and average pooling, the default
    uses ReLU and max pooling, as modern re-implementations do.
    """

    in_channels: int = 1
    image_size: int = 28
    channels: Sequence[int] = (6, 16)   # feature maps of the two convolutions
    kernel_size: int = 5
    padding: int = 2                    # of the first convolution only, as 32x32 -> 28x28
    hidden: Sequence[int] = (120, 84)   # the dense layers after the convolutions
    n_classes: int = 10
    activation: str = "relu"
    pool: str = "max"

    @classmethod
    def lenet5(cls) -> "LeNetConfig":
        return cls()

    @classmethod
    def classic(cls) -> "LeNetConfig":
        return cls(activation="tanh", pool="avg")

    @classmethod
    def tiny(cls) -> "LeNetConfig":
        return cls(channels=(4, 8), hidden=(32,))


class LeNet(nn.Module):
    """``features`` (conv -> activation -> pool, twice) then ``classifier`` (dense layers)."""

    def __init__(self, config: LeNetConfig | None = None, **overrides):
        super().__init__()
        config = config or LeNetConfig()
        _check_overrides(config, overrides)
        config = replace(config, **overrides)
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if config.pool not in POOLS:
            raise ValueError(f"unknown pool {config.pool!r}; choose from {sorted(POOLS)}")
        if len(config.channels) != 2:
            raise ValueError(f"LeNet has two convolutions: channels needs 2 entries, got {config.channels}")
        self.config = config
        act, pool, k = ACTIVATIONS[config.activation], POOLS[config.pool], config.kernel_size
        c1, c2 = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(config.in_channels, c1, k, padding=config.padding), act(), pool(2),
            nn.Conv2d(c1, c2, k), act(), pool(2))
        side = (config.image_size + 2 * config.padding - k + 1) // 2   # after conv 1 and pool
        side = (side - k + 1) // 2                                      # after conv 2 and pool
        if side < 1:
            raise ValueError(f"images of {config.image_size} pixels are too small for two "
                             f"{k}x{k} convolutions and poolings")
        sizes = [c2 * side * side, *config.hidden, config.n_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(act())
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, C, H, W) -> (B, c2, 5, 5) -> (B, classes)


def vgg_block(in_channels: int, out_channels: int, n_convs: int = 2, batchnorm: bool = False,
              activation: str = "relu") -> nn.Sequential:
    """A VGG block (Simonyan and Zisserman, 2015): ``n_convs`` 3x3 convolutions (padding 1, so the
    size is kept), each followed by [BatchNorm and] the activation, then 2x2 max pooling."""
    if n_convs < 1:
        raise ValueError(f"a VGG block needs at least one convolution, got n_convs={n_convs}")
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                                padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(ACTIVATIONS[activation]())
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


@dataclass
class VGGConfig:
    """A small VGG-style network: blocks of 3x3 convolutions and pooling, then a linear layer.

    ``blocks``: ``(n_convs, channels)`` per block; each block halves the image side.
    """

    in_channels: int = 1
    image_size: int = 28
    blocks: Sequence[tuple[int, int]] = ((2, 16), (2, 32))
    n_classes: int = 10
    batchnorm: bool = False
    dropout: float = 0.0    # before the classifier

    @classmethod
    def tiny(cls) -> "VGGConfig":
        return cls(blocks=((1, 8), (1, 16)))

    @classmethod
    def small(cls) -> "VGGConfig":
        return cls()


class VGG(nn.Module):
    """``features`` (the VGG blocks) then ``classifier`` (flatten, [dropout], linear)."""

    def __init__(self, config: VGGConfig | None = None, **overrides):
        super().__init__()
        config = config or VGGConfig()
        _check_overrides(config, overrides)
        config = replace(config, **overrides)
        side = config.image_size // 2 ** len(config.blocks)
        if side < 1:
            raise ValueError(f"{len(config.blocks)} blocks halve {config.image_size} pixels to nothing")
        self.config = config
        blocks, channels = [], config.in_channels
        for n_convs, out_channels in config.blocks:
            blocks.append(vgg_block(channels, out_channels, n_convs, config.batchnorm))
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout),
                                        nn.Linear(channels * side * side, config.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, C, H, W) -> (B, classes)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, and (``skip=True``) the shortcut of He et al. (2016):

        out = relu(F(x) + shortcut(x)),  F(x) = bn(conv(relu(bn(conv(x)))))

    The shortcut is the identity, or a strided 1x1 convolution where the shape changes. With
    ``skip=False`` the block is its plain twin, ``relu(F(x))``: the same layers, no shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, skip: bool = True,
                 batchnorm: bool = True):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not batchnorm)
        self.bn1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not batchnorm)
        self.bn2 = norm(out_channels)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=not batchnorm),
                norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (B, C_out, H / stride, W / stride)
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)           # the residual connection
        return torch.relu(out)


@dataclass
class ResNetConfig:
    """A small ResNet for small images (He et al., 2016, CIFAR style): a 3x3 stem convolution,
    stages of :class:`BasicBlock`\\ s (each stage after the first halves the side and doubles the
    width), global average pooling and a linear layer.

    ``depth`` counts the weight layers on the main path: ``2 * sum(blocks) + 2``.
    ``skip=False`` builds the plain twin: the same depth and layers without shortcuts.
    """

    in_channels: int = 1
    width: int = 16
    blocks: Sequence[int] = (2, 2, 2)   # basic blocks per stage
    n_classes: int = 10
    skip: bool = True
    batchnorm: bool = True

    @property
    def depth(self) -> int:
        return 2 * sum(self.blocks) + 2

    @classmethod
    def resnet8(cls) -> "ResNetConfig":
        return cls(blocks=(1, 1, 1))

    @classmethod
    def resnet20(cls) -> "ResNetConfig":
        return cls(blocks=(3, 3, 3))

    @classmethod
    def tiny(cls) -> "ResNetConfig":
        return cls(width=8, blocks=(1, 1))

    def plain(self) -> "ResNetConfig":
        """The same network without its shortcuts (for the degradation experiment)."""
        return replace(self, skip=False)


class ResNet(nn.Module):
    """``stem`` -> ``stages`` of blocks -> global average pool -> ``fc``."""

    def __init__(self, config: ResNetConfig | None = None, **overrides):
        super().__init__()
        config = config or ResNetConfig()
        _check_overrides(config, overrides)
        config = replace(config, **overrides)
        if not config.blocks or min(config.blocks) < 1:
            raise ValueError(f"blocks needs at least one stage of >= 1 blocks, got {config.blocks}")
        self.config = config
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1, bias=not config.batchnorm),
            nn.BatchNorm2d(w) if config.batchnorm else nn.Identity(), nn.ReLU())
        stages, channels = [], w
        for i, n_blocks in enumerate(config.blocks):
            out_channels = w * 2 ** i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(channels, out_channels, stride, config.skip,
                                         config.batchnorm))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))     # (B, width * 2^(stages-1), H', W')
        return self.fc(h.mean(dim=(2, 3)))  # global average pool -> (B, classes)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass for one input of ``input_shape`` (without the batch
    dimension), counting every ``nn.Conv2d`` and ``nn.Linear`` (the layers that hold nearly all of
    a CNN's arithmetic; poolings, norms and activations are left out, as torchvision's tables do).

    Build the model on the meta device (``with torch.device("meta"): ...``) to count a large one
    without allocating its weights: the shapes are all this needs.
    """
    if len(input_shape) < 1 or min(input_shape) < 1:
        raise ValueError(f"input_shape is one input's shape without the batch, got {input_shape}")
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        per_input = output.numel() // output.shape[0]             # outputs of one input
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += per_input * (module.in_channels // module.groups) * kh * kw
        else:
            total += per_input * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
