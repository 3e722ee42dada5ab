"""dlbook.explain (saliency, occlusion, feature maps), dlbook.adversarial (FGSM), dlbook.tuning."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook import adversarial, explain, tuning
from dlbook.models import LeNet, LeNetConfig
from dlbook.training import History


class Linear(nn.Module):
    """logit_k = <w_k, x>: its input gradients are known exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)                   # (classes, C, H, W)

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.w)


def linear_model(seed=0, classes=3, shape=(2, 5, 5)):
    torch.manual_seed(seed)
    return Linear(torch.randn(classes, *shape))


def test_saliency_is_the_absolute_input_gradient_of_the_class_score():
    model = linear_model()
    x = torch.randn(4, 2, 5, 5)
    target = torch.tensor([0, 2, 1, 0])
    s = explain.saliency(model, x, target)
    assert s.shape == (4, 5, 5)
    expected = model.w.detach()[target].abs().amax(dim=1)  # d logit / d x = w_target
    assert torch.allclose(s, expected)
    # Default target: the predicted class; the parameters' gradients are untouched.
    pred = model(x).argmax(1)
    assert torch.allclose(explain.saliency(model, x), model.w.detach()[pred].abs().amax(1))
    assert model.w.grad is None
    with pytest.raises(ValueError, match="one target per image"):
        explain.saliency(model, x, torch.tensor([0]))
    with pytest.raises(ValueError, match="batch of images"):
        explain.saliency(model, x[0])


def test_saliency_restores_train_mode():
    model = LeNet(LeNetConfig.tiny()).train()
    explain.saliency(model, torch.rand(2, 1, 28, 28))
    assert model.training


def test_occlusion_map_finds_the_only_pixel_that_matters():
    # A model that sees one pixel only: class 1's logit is 5 * x[10, 20].
    w = torch.zeros(2, 1, 28, 28)
    w[1, 0, 10, 20] = 5.0
    model = Linear(w)
    image = torch.ones(1, 28, 28)
    probs = explain.occlusion_map(model, image, target=1, size=4, stride=2)
    assert probs.shape == (13, 13)
    low = (probs < 0.6).nonzero().tolist()          # occluder covering (10, 20) only
    assert low and all(r * 2 <= 10 < r * 2 + 4 and c * 2 <= 20 < c * 2 + 4 for r, c in low)
    assert torch.isclose(probs.max(), torch.sigmoid(torch.tensor(5.0)))
    with pytest.raises(ValueError, match="does not fit"):
        explain.occlusion_map(model, image, 1, size=30)
    with pytest.raises(ValueError, match="one image"):
        explain.occlusion_map(model, image[None], 1)


def test_occlude_copies_and_clips():
    x = torch.ones(2, 1, 6, 6)
    y = explain.occlude(x, 4, 4, 3, fill=0.5)
    assert x.min() == 1 and (y == 0.5).sum() == 2 * 4
    with pytest.raises(ValueError, match="at least 1"):
        explain.occlude(x, 0, 0, 0)


def test_feature_maps_records_each_relu_in_order():
    model = LeNet()
    maps = explain.feature_maps(model, torch.rand(1, 1, 28, 28))
    shapes = [tuple(m.shape) for m in maps.values()]
    assert shapes[:2] == [(1, 6, 28, 28), (1, 16, 10, 10)] and len(shapes) == 4
    conv_maps = explain.feature_maps(model, torch.rand(1, 1, 28, 28), kinds=(nn.Conv2d,))
    assert list(conv_maps) == ["features.0", "features.3"]
    with pytest.raises(ValueError, match="no modules"):
        explain.feature_maps(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
                             torch.rand(1, 1, 2, 2))


def test_fgsm_is_a_signed_gradient_step_that_raises_the_loss():
    model = linear_model(classes=4)
    x = torch.rand(8, 2, 5, 5)
    y = torch.randint(0, 4, (8,))
    xr = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
    adv = adversarial.fgsm(model, x, y, 0.1, clamp=None)
    assert torch.allclose(adv, x + 0.1 * grad.sign())
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)
    clamped = adversarial.fgsm(model, x, y, 0.5)
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert model.w.grad is None
    with pytest.raises(ValueError, match="epsilon"):
        adversarial.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="one label per input"):
        adversarial.fgsm(model, x, y[:3], 0.1)


def test_accuracy_under_attack_falls_with_epsilon():
    torch.manual_seed(0)
    w = torch.randn(3, 1, 4, 4)
    model = Linear(w)
    x = torch.rand(300, 1, 4, 4)
    y = model(x).argmax(1)                          # the model is right on every input
    accs = [adversarial.accuracy_under_attack(model, x, y, e, batch_size=64)
            for e in (0.0, 0.05, 0.2, 0.5)]
    assert accs[0] == 1.0
    assert all(a >= b for a, b in zip(accs, accs[1:])) and accs[-1] < 0.5


def history(val_losses, val_metrics):
    return History(epoch=list(range(1, len(val_losses) + 1)), val_loss=val_losses,
                   val_metric=val_metrics)


def test_tune_then_repeat_chooses_on_validation_and_reuses_the_first_run():
    calls = []

    def train_one(lr, seed):
        calls.append((lr, seed))
        score = {0.1: 0.5, 0.01: 0.9, 0.001: 0.7}[lr] + 0.01 * seed
        return f"model {lr} {seed}", history([1.0, 0.5, 0.8], [0.0, score, 0.0])

    runs = tuning.tune_then_repeat(train_one, [0.1, 0.01, 0.001], seeds=(0, 1, 2))
    assert runs.choice == 0.01
    assert runs.grid_scores == {0.1: 0.5, 0.01: 0.9, 0.001: 0.7}
    assert calls == [(0.1, 0), (0.01, 0), (0.001, 0), (0.01, 1), (0.01, 2)]
    assert runs.models[0] == "model 0.01 0" and runs.seeds == [0, 1, 2]
    assert runs.scores == pytest.approx([0.9, 0.91, 0.92])
    assert runs.mean() == pytest.approx(0.91) and runs.spread() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="empty"):
        tuning.tune_then_repeat(train_one, [])
    with pytest.raises(ValueError, match="distinct"):
        tuning.tune_then_repeat(train_one, [0.1], seeds=(1, 1))
    with pytest.raises(ValueError, match="no validation"):
        tuning.best_val_metric(History())


def test_tune_then_repeat_accepts_any_result_with_its_score():
    runs = tuning.tune_then_repeat(lambda lr, seed: (None, lr * 10 + seed), [0.1, 0.3],
                                   seeds=(0, 1), score=float)
    assert runs.choice == 0.3 and runs.scores == [3.0, 4.0] and runs.histories == [3.0, 4.0]


def test_rank_correlation_matches_scipy_and_orders():
    from scipy.stats import spearmanr
    torch.manual_seed(0)
    a, b = torch.rand(3, 5, 5), torch.rand(3, 5, 5)
    b[0] = a[0] ** 2  # same order
    rho = explain.rank_correlation(a, b)
    assert rho[0] == pytest.approx(1.0)
    for i in range(3):
        assert rho[i].item() == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten())[0])
    with pytest.raises(ValueError, match="one shape"):
        explain.rank_correlation(a, b[:2])


def test_rank_correlation_on_a_mask_ignores_the_shared_zeros():
    from scipy.stats import spearmanr
    torch.manual_seed(0)
    ink = torch.rand(20, 28, 28) > 0.8                      # 80% blank, as a digit
    a, b = torch.rand(20, 28, 28) * ink, torch.rand(20, 28, 28) * ink  # unrelated maps
    assert explain.rank_correlation(a, b).mean() > 0.9      # the ties alone
    on_ink = explain.rank_correlation(a, b, mask=ink)
    assert abs(on_ink.mean()) < 0.05
    i = 3
    assert on_ink[i].item() == pytest.approx(spearmanr(a[i][ink[i]], b[i][ink[i]])[0])
    assert explain.rank_correlation(a, a ** 2, mask=ink).min() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mask"):
        explain.rank_correlation(a, b, mask=ink.float())
    with pytest.raises(ValueError, match="2 pixels"):
        explain.rank_correlation(a, b, mask=torch.zeros_like(ink))


def test_randomisation_check_cascades_and_gives_a_floor():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 6 * 6, 4)).eval()
    x, y = torch.rand(5, 1, 6, 6), torch.tensor([0, 1, 2, 3, 0])
    cascade, floor = explain.randomisation_check(model, explain.saliency, x, y, draws=range(3))
    assert cascade.shape == (3, 2) and floor.shape == (3,)
    full, floor2 = explain.randomisation_check(model, explain.saliency, x, y, draws=range(3),
                                               cascade=False)
    assert np.allclose(full, cascade[:, -1]) and np.allclose(floor, floor2)
    # a method that ignores the weights passes nothing: agreement 1 everywhere
    same, _ = explain.randomisation_check(model, lambda m, x, y: x[:, 0] + 1, x, y,
                                          draws=range(2))
    assert np.allclose(same, 1.0)
    with pytest.raises(ValueError, match="2 draws"):
        explain.randomisation_check(model, explain.saliency, x, y, draws=[0])


def test_occlusion_agreement_scores_saliency_and_ink_against_the_cost():
    w = torch.zeros(2, 1, 12, 12)
    w[1, 0, 2:6, 2:6] = 1.0        # class 1 reads the top-left corner only
    model = Linear(w)
    torch.manual_seed(0)
    images = torch.rand(3, 1, 12, 12)
    out = explain.occlusion_agreement(model, images, torch.tensor([1, 1, 1]), size=4, stride=2)
    assert out["cost"].shape == (3, 5, 5) and out["saliency"].shape == out["ink"].shape == (3,)
    assert (out["saliency"] > 0.7).all()   # saliency is where covering costs
    assert (out["ink"] < out["saliency"]).all()


def test_randomized_from_top_resets_only_the_top_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight.fill_(2.0)
    top2 = explain.randomized_from_top(model, 2, seed=1)
    assert torch.equal(top2[0].weight, model[0].weight)            # untouched
    assert torch.equal(top2[1].weight, torch.ones(2))               # BatchNorm reset
    assert not torch.equal(top2[3].weight, model[3].weight)         # re-drawn
    assert torch.equal(model[1].weight, torch.full((2,), 2.0))     # the original is left alone
    again = explain.randomized_from_top(model, 2, seed=1)
    assert torch.equal(again[3].weight, top2[3].weight)             # seeded
    with pytest.raises(ValueError, match="out of range"):
        explain.randomized_from_top(model, 4)


def test_randomized_from_top_can_keep_the_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight.fill_(2.0)
        model[1].running_var.fill_(5.0)
    assert explain.weight_layers(model, (nn.Conv2d, nn.Linear)) == ["0", "3"]
    assert explain.weight_layers(model) == ["0", "1", "3"]
    top2 = explain.randomized_from_top(model, 2, seed=1, only=(nn.Conv2d, nn.Linear))
    assert not torch.equal(top2[0].weight, model[0].weight)         # both re-drawn
    assert not torch.equal(top2[3].weight, model[3].weight)
    assert torch.equal(top2[1].weight, torch.full((2,), 2.0))       # BatchNorm kept
    assert torch.equal(top2[1].running_var, torch.full((2,), 5.0))


def test_grad_cam_is_cam_for_a_global_average_pooled_linear_head():
    # conv -> relu -> GAP -> linear: ds/dA_kij = w_ck / (h w), so Grad-CAM is Zhou et al.'s
    # class activation map relu(sum_k w_ck A_k) / (h w)
    torch.manual_seed(0)
    conv, relu, fc = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Linear(4, 3)
    model = nn.Sequential(conv, relu, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).train()
    x = torch.randn(5, 1, 6, 6)
    target = torch.tensor([0, 1, 2, 0, 1])
    cam = explain.grad_cam(model, x, relu, target)
    with torch.no_grad():
        a = relu(conv(x))                                           # (5, 4, 6, 6)
        expected = torch.relu(torch.einsum("bk,bkhw->bhw", fc.weight[target], a)) / 36
    assert cam.shape == (5, 6, 6) and torch.allclose(cam, expected, atol=1e-6)
    assert model.training and all(p.grad is None for p in model.parameters())
    predicted = explain.grad_cam(model, x, relu)
    assert torch.allclose(predicted, explain.grad_cam(model, x, relu, model(x).argmax(1)))


def test_grad_cam_upsamples_and_refuses_bad_layers():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    assert explain.grad_cam(model, torch.randn(2, 1, 8, 8), conv).shape == (2, 8, 8)
    with pytest.raises(ValueError, match="own modules"):
        explain.grad_cam(model, torch.randn(2, 1, 8, 8), nn.Conv2d(1, 4, 3))
    with pytest.raises(ValueError, match="feature maps"):
        explain.grad_cam(model, torch.randn(2, 1, 8, 8), model[3])
    with pytest.raises(ValueError, match="one target per image"):
        explain.grad_cam(model, torch.randn(2, 1, 8, 8), conv, torch.tensor([0]))
    with pytest.raises(ValueError, match="batch of images"):
        explain.grad_cam(model, torch.randn(1, 8, 8), conv)


def test_pgd_stays_in_its_box_and_is_at_least_as_strong_as_fgsm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    x = torch.rand(200, 1, 4, 4)
    y = model(x).argmax(1)
    adv = adversarial.pgd(model, x, y, 0.1, steps=5)
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(adv, adversarial.pgd(model, x, y, 0.1, steps=5))      # seeded
    # one step of size epsilon from the clean input is FGSM
    one = adversarial.pgd(model, x, y, 0.1, steps=1, step_size=0.1, random_start=False)
    assert torch.allclose(one, adversarial.fgsm(model, x, y, 0.1))
    loss = [F.cross_entropy(model(a), y).item()
            for a in (x, adversarial.fgsm(model, x, y, 0.2), adversarial.pgd(model, x, y, 0.2))]
    assert loss[0] < loss[1] <= loss[2]
    f, p = (adversarial.accuracy_under_attack(model, x, y, 0.2, attack=a) for a in ("fgsm", "pgd"))
    assert p <= f < 1
    with pytest.raises(ValueError, match="at least one step"):
        adversarial.pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match="epsilon"):
        adversarial.pgd(model, x, y, -0.1)
    with pytest.raises(ValueError, match="one label per input"):
        adversarial.pgd(model, x, y[:3], 0.1)
    with pytest.raises(ValueError, match="attack must be one of"):
        adversarial.accuracy_under_attack(model, x, y, 0.1, attack="pgdd")
