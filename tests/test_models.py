"""The CNNs of dlbook.models (LeNet, VGG, ResNet and its plain twin): shapes, sizes, presets."""
import pytest
import torch
from torch import nn

from dlbook.models import (MLP, VGG, BasicBlock, LeNet, LeNetConfig, ResNet, ResNetConfig,
                           VGGConfig, count_parameters, vgg_block)


def test_lenet5_has_the_classic_shapes_and_parameter_count():
    model = LeNet()
    x = torch.zeros(2, 1, 28, 28)
    assert model.features(x).shape == (2, 16, 5, 5)
    assert model(x).shape == (2, 10)
    # conv 156 + conv 2416 + 400*120+120 + 120*84+84 + 84*10+10
    assert count_parameters(model) == 156 + 2416 + 48120 + 10164 + 850


def test_lenet_presets_and_overrides():
    classic = LeNet(LeNetConfig.classic())
    assert isinstance(classic.features[1], nn.Tanh) and isinstance(classic.features[2], nn.AvgPool2d)
    tiny = LeNet(LeNetConfig.tiny())
    assert tiny(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert count_parameters(tiny) < count_parameters(LeNet()) / 5
    config = LeNetConfig()
    LeNet(config, n_classes=5)
    assert config.n_classes == 10, "overrides must not mutate the caller's config"
    assert LeNet(image_size=32, padding=0)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    with pytest.raises(TypeError, match="no field"):
        LeNet(width=3)
    with pytest.raises(ValueError, match="pool"):
        LeNet(pool="median")
    with pytest.raises(ValueError, match="too small"):
        LeNet(image_size=8, padding=0)


def test_vgg_blocks_halve_the_image_and_stack_convolutions():
    block = vgg_block(3, 8, n_convs=2)
    assert sum(isinstance(m, nn.Conv2d) for m in block) == 2
    assert block(torch.zeros(1, 3, 16, 16)).shape == (1, 8, 8, 8)
    model = VGG(VGGConfig.small())
    assert model.features(torch.zeros(4, 1, 28, 28)).shape == (4, 32, 7, 7)
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    assert VGG(VGGConfig.tiny(), batchnorm=True)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="at least one convolution"):
        vgg_block(1, 2, n_convs=0)
    with pytest.raises(ValueError, match="halve"):
        VGG(image_size=4, blocks=((1, 4),) * 3)


@pytest.mark.parametrize("preset", [ResNetConfig.tiny, ResNetConfig.resnet8, ResNetConfig.resnet20])
def test_resnet_and_its_plain_twin_have_the_same_depth(preset):
    config = preset()
    res, plain = ResNet(config), ResNet(config.plain())
    convs = lambda m: [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
    assert len(convs(res)) == len(convs(plain)) == config.depth - 1  # + the final linear layer
    x = torch.randn(2, 1, 16, 16)
    assert res(x).shape == plain(x).shape == (2, 10)
    # The only difference is the shortcuts (1x1 projections where the shape changes).
    extra = count_parameters(res) - count_parameters(plain)
    projections = [m for m in res.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert extra == sum(count_parameters(p) for p in projections) + sum(
        2 * p.out_channels for p in projections)  # their BatchNorm scales and shifts
    assert config.depth == 2 * sum(config.blocks) + 2


def test_a_residual_block_adds_its_input_and_the_plain_block_does_not():
    torch.manual_seed(0)
    block = BasicBlock(4, 4, skip=True).eval()
    plain = BasicBlock(4, 4, skip=False).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        nn.init.zeros_(block.bn2.weight)   # F(x) = 0: the block is relu(x)
        nn.init.zeros_(block.bn2.bias)
        nn.init.zeros_(plain.bn2.weight)
        nn.init.zeros_(plain.bn2.bias)
        assert torch.allclose(block(x), torch.relu(x))
        assert torch.equal(plain(x), torch.zeros_like(x))
    down = BasicBlock(4, 8, stride=2)
    assert down(x).shape == (3, 8, 3, 3)


def test_resnet_without_batchnorm_and_bad_configs():
    model = ResNet(ResNetConfig.tiny(), batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    with pytest.raises(ValueError, match="blocks"):
        ResNet(blocks=())
    with pytest.raises(TypeError, match="no field"):
        ResNet(depth=3)


def test_mlp_still_works():
    assert MLP(sizes=(784, 78, 10))(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_count_macs_by_hand_and_against_torchvisions_published_counts():
    from dlbook.models import count_macs
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    by_hand = 8 * 8 * 8 * 3 * 9 + 8 * 6 * 6 * 2 * 9 + 10 * 288
    assert count_macs(net, (3, 8, 8)) == by_hand
    assert net.training  # left as it was
    import torchvision.models as tvm
    with torch.device("meta"):
        resnet = tvm.resnet18(weights=None)
    published = tvm.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # GMACs ("GFLOPS" there)
    assert count_macs(resnet, (3, 224, 224)) / 1e9 == pytest.approx(published, abs=1e-3)
    with pytest.raises(ValueError, match="batch"):
        count_macs(net, ())
