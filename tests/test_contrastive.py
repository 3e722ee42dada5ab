"""dlbook.contrastive: the InfoNCE / NT-Xent / CLIP losses against a direct computation, the
augmentation helpers, the probe against scikit-learn, and short training runs."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from dlbook import contrastive as C


def nt_xent_direct(z1, z2, tau):
    """The SimCLR paper's formula, term by term (a Python loop over the 2N views)."""
    z = torch.cat([z1, z2])
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sim = [F.cosine_similarity(z[i], z[k], dim=0) / tau for k in range(n2)]
        denominator = sum(torch.exp(sim[k]) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(sim[j]) / denominator)
    return total / n2


def info_nce_direct(a, b, tau):
    total = 0.0
    for i in range(len(a)):
        sims = torch.stack([F.cosine_similarity(a[i], b[k], dim=0) for k in range(len(b))]) / tau
        total = total - (sims[i] - torch.logsumexp(sims, 0))
    return total / len(a)


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_nt_xent_matches_the_formula_in_value_and_gradient(tau):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    ours = C.nt_xent(z1, z2, tau)
    direct = nt_xent_direct(z1, z2, tau)
    torch.testing.assert_close(ours, direct)
    g_ours = torch.autograd.grad(ours, (z1, z2))
    g_direct = torch.autograd.grad(direct, (z1, z2))
    for a, b in zip(g_ours, g_direct):
        torch.testing.assert_close(a, b)


def test_info_nce_and_clip_loss_match_the_formula_and_train_the_scale():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(C.info_nce(a, b, 0.3), info_nce_direct(a, b, 0.3))
    log_scale = torch.tensor(math.log(5.0), dtype=torch.float64, requires_grad=True)
    loss = C.clip_loss(a, b, log_scale.exp())
    expected = 0.5 * (info_nce_direct(a, b, 0.2) + info_nce_direct(b, a, 0.2))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert log_scale.grad is not None and log_scale.grad.abs() > 0


def test_losses_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        C.nt_xent(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        C.info_nce(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        C.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)
    with pytest.raises(ValueError, match="logit_scale"):
        C.clip_loss(torch.randn(4, 3), torch.randn(4, 3), -1.0)


def test_nt_xent_limits():
    gen = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    assert C.nt_xent(z1, z2, 1e4).item() == pytest.approx(math.log(9), abs=1e-3)
    assert C.nt_xent(z1, z1, 0.05).item() < 0.1  # identical views: the partner wins


def test_per_image_draws_one_transform_per_image_and_the_bank_is_reproducible():
    crop = v2.RandomResizedCrop(8, scale=(0.3, 1.0), antialias=True)
    images = torch.rand(1, 1, 16, 16).repeat(4, 1, 1, 1)
    torch.manual_seed(0)
    one_call = crop(images)
    assert all(torch.equal(one_call[0], one_call[k]) for k in range(4))
    views = C.per_image(crop, images)
    assert views.shape == (4, 1, 8, 8) and not torch.equal(views[0], views[1])
    bank = C.view_bank(crop, images, views=3, seed=5)
    assert bank.shape == (3, 4, 1, 8, 8)
    torch.testing.assert_close(bank, C.view_bank(crop, images, views=3, seed=5))
    with pytest.raises(ValueError, match="at least 2 views"):
        C.view_bank(crop, images, views=1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        C.per_image(crop, images[0])


def test_two_views_are_always_different_views_of_the_same_image():
    bank = torch.arange(3 * 10).float().view(3, 10, 1, 1, 1)  # value = view * 10 + image
    index = torch.arange(10).repeat(20)
    first, second = C.two_views(bank, index, torch.Generator().manual_seed(0))
    assert torch.equal(first.flatten() % 10, index.float()) and torch.equal(second.flatten() % 10, index.float())
    assert (first != second).all()


def test_jitter_stays_in_range_and_blanks_a_square():
    images = torch.ones(16, 1, 14, 14)
    out = C.jitter(images, torch.Generator().manual_seed(0), noise=0.0, contrast=(1.0, 1.0), erase=5)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert ((out == 0).flatten(1).sum(1) == 25).all()  # one 5 x 5 square per image


def test_encoder_shapes_and_errors():
    config = C.EncoderConfig.tiny()
    model = C.SimCLR(config)
    x = torch.rand(3, 1, 14, 14)
    assert model.encoder(x).shape == (3, config.features)
    assert model(x).shape == (3, config.projection)
    assert C.classifier(config)(x).shape == (3, 10)
    with pytest.raises(ValueError, match="expects"):
        model.encoder(torch.rand(3, 1, 28, 28))


def test_linear_probe_agrees_with_scikit_learn_and_tunes_on_validation():
    from sklearn.linear_model import LogisticRegression

    gen = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(4, 6, generator=gen)
    y = torch.arange(4).repeat(50)
    x = centres[y] + torch.randn(200, 6, generator=gen)
    probe = C.LinearProbe(weight_decay=1e-2, steps=300).fit(x[:120], y[:120], classes=4)
    z = lambda t: ((t - probe.mean) / probe.std).numpy()
    reference = LogisticRegression(C=1 / (2 * 120 * 1e-2), max_iter=5000).fit(z(x[:120]), y[:120].numpy())
    np.testing.assert_allclose(probe.linear.weight.detach().numpy(), reference.coef_, atol=1e-2)
    assert (probe.predict(x[120:]).numpy() == reference.predict(z(x[120:]))).all()
    tuned = C.LinearProbe.fit_tuned((x[:120], y[:120]), (x[120:], y[120:]))
    assert tuned.val_accuracy == pytest.approx(tuned.accuracy(x[120:], y[120:]))
    with pytest.raises(ValueError, match="as many labels"):
        C.LinearProbe().fit(x[:10], y[:9])


def test_fit_simclr_lowers_the_loss_and_records_snapshots():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 14, 14, generator=gen)
    bank = torch.stack([images + 0.05 * torch.randn(images.shape, generator=gen) for _ in range(3)]).clamp(0, 1)
    model = C.SimCLR(C.EncoderConfig.tiny())
    history = C.fit_simclr(model, bank, steps=40, batch_size=32, temperature=0.5,
                           snapshot=images[:10], snapshot_every=20, transform=None)
    assert np.mean(history.loss[-5:]) < np.mean(history.loss[:5])
    assert [s for s, _ in history.snapshots] == [0, 20, 40]
    assert history.snapshots[0][1].shape == (10, C.EncoderConfig.tiny().features)
    with pytest.raises(ValueError, match="more than"):
        C.fit_simclr(model, bank, steps=1, batch_size=100)


def test_clip_learns_to_match_images_to_their_class_texts():
    gen = torch.Generator().manual_seed(0)
    templates = torch.randn(2, 14 * 14, generator=gen)
    y = torch.arange(2).repeat(32)
    images = (templates[y] + 0.3 * torch.randn(64, 14 * 14, generator=gen)).view(64, 1, 14, 14)
    text = torch.randn(2, 12, generator=gen)  # one "sentence vector" per class
    torch.manual_seed(0)
    model = C.CLIP(text_dim=12, config=C.EncoderConfig.tiny(), dim=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = model.log_scale.item()
    for _ in range(60):
        idx = torch.randint(0, 64, (16,), generator=gen)
        loss = model(images[idx], text[y[idx]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model.log_scale.item() != start
    assert (model.classify(images, text) == y).float().mean() > 0.9


def test_labelled_subset_draws_k_of_every_class_reproducibly():
    labels = torch.arange(4).repeat_interleave(torch.tensor([5, 6, 7, 3]))
    idx = C.labelled_subset(labels, 3, seed=1)
    assert torch.equal(torch.bincount(labels[idx]), torch.tensor([3, 3, 3, 3]))
    assert torch.equal(idx, C.labelled_subset(labels, 3, seed=1))
    assert not torch.equal(idx, C.labelled_subset(labels, 3, seed=2))
    with pytest.raises(ValueError, match="smallest class"):
        C.labelled_subset(labels, 4, seed=0)


def test_probe_standardises_with_unlabelled_statistics_and_tunes_by_loss():
    gen = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(3, 5, generator=gen)
    y = torch.arange(3).repeat(40)
    x = centres[y] + torch.randn(120, 5, generator=gen)
    probe = C.LinearProbe(1e-2).fit(x[:6], y[:6], classes=3, unlabelled=x)
    torch.testing.assert_close(probe.mean, x.mean(0))
    tuned = C.LinearProbe.fit_tuned((x[:30], y[:30]), (x[60:], y[60:]), [1e-3, 1e-1, 10.0])
    losses = {wd: loss for wd, (_, loss) in tuned.grid.items()}
    assert tuned.weight_decay == min(losses, key=losses.get)
    assert tuned.val_loss == pytest.approx(tuned.loss(x[60:], y[60:]))
    # a heavy penalty leaves the probabilities near uniform: a loss near log(3)
    assert losses[10.0] > losses[1e-3] and losses[10.0] < math.log(3) + 1e-3
    with pytest.raises(ValueError, match="empty"):
        C.LinearProbe.fit_tuned((x, y), (x, y), [])


def _toy_few_label_data():
    gen = torch.Generator().manual_seed(0)
    templates = torch.rand(10, 1, 14, 14, generator=gen)
    def split(n):
        y = torch.arange(10).repeat(n // 10)
        return (templates[y] + 0.3 * torch.randn(n, 1, 14, 14, generator=gen)).clamp(0, 1), y
    (xt, yt), (xv, yv), (xs, ys) = split(200), split(100), split(100)
    return (xt, xv, xs), (yt, yv, ys)


def test_few_label_curves_shapes_pairs_and_the_file_round_trip():
    images, labels = _toy_few_label_data()
    torch.manual_seed(0)
    models = [C.SimCLR(), C.SimCLR()]
    runs = C.few_label_runs(models, images)
    assert list(runs[0]) == ["SimCLR", "untrained encoder", "raw pixels"]
    assert runs[0]["raw pixels"][0].shape == (200, 196)
    result = C.few_label_curves(runs, images, labels, [1, 4], draws=lambda k: 2 if k == 1 else 1,
                                weight_decays=[1e-3, 1e-1, 10.0], lrs=[1e-3, 1e-2], steps=20,
                                batch_size=8, eval_every=10)
    acc = result.accuracy["network"]
    assert acc.shape == (2, 2, 2) and np.isnan(acc[:, 1, 1]).all() and not np.isnan(acc[:, :, 0]).any()
    assert result.val_sizes == [10, 40]
    assert result.per_run("raw pixels").shape == (2, 2)
    # raw pixels of these well-separated templates: a probe classifies them with one label each
    assert np.nanmin(result.accuracy["raw pixels"]) > 0.9
    assert set(np.unique(result.chosen["network"][~np.isnan(acc)])) <= {1e-3, 1e-2}
    assert result.at_edge("network").sum() == (~np.isnan(acc)).sum()  # a 2-value grid: all edges
    back = C.few_labels_from_json(json.loads(json.dumps(C.few_labels_to_json(result))))
    for name in result.accuracy:
        np.testing.assert_allclose(back.accuracy[name], result.accuracy[name], atol=1e-6)
    with pytest.raises(ValueError, match="same contenders"):
        C.few_label_curves([runs[0], {"x": runs[1]["SimCLR"]}], images, labels, [1],
                           draws=lambda k: 1, weight_decays=[1.0], lrs=[1e-3], steps=2)


def test_fit_clip_trains_on_the_chosen_classes_only():
    images, labels = _toy_few_label_data()
    bank = torch.stack([images[0], images[0]])  # (2, 200, 1, 14, 14)
    captions = torch.randn(3, 10, 12, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = C.CLIP(text_dim=12, config=C.EncoderConfig.tiny(), dim=8)
    losses = C.fit_clip(model, bank, labels[0], captions, steps=40, batch_size=32,
                        classes=range(9))
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5])
    with pytest.raises(ValueError, match="more than"):
        C.fit_clip(model, bank, labels[0], captions, steps=1, batch_size=32, classes=[0])


def test_linear_probe_rejects_bad_input_up_front():
    x, y = torch.randn(40, 3), torch.arange(4).repeat(10)
    with pytest.raises(ValueError, match="weight_decay"):
        C.LinearProbe(weight_decay=-1)
    with pytest.raises(ValueError, match="weight_decay"):
        C.LinearProbe(weight_decay=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        C.LinearProbe(steps=0)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        C.LinearProbe().fit(bad, y, classes=4)
    with pytest.raises(ValueError, match="NaN or inf"):
        C.LinearProbe().fit(x, y, classes=4, unlabelled=bad)
    with pytest.raises(ValueError, match="labels must lie"):
        C.LinearProbe().fit(x, y + 1, classes=4)
    with pytest.raises(ValueError, match="no example of class"):
        C.LinearProbe.fit_tuned((x, y), (x[y != 2], y[y != 2]))


def test_fit_clip_calls_on_step_without_changing_the_run_and_prompt_rank():
    images, labels = _toy_few_label_data()
    bank = torch.stack([images[0], images[0]])
    captions = torch.randn(3, 10, 12, generator=torch.Generator().manual_seed(1))
    runs, seen = [], []
    for hook in (None, lambda step, model: seen.append((step, model.training))):
        torch.manual_seed(0)
        model = C.CLIP(text_dim=12, config=C.EncoderConfig.tiny(), dim=8)
        runs.append(C.fit_clip(model, bank, labels[0], captions, steps=5, batch_size=32,
                               on_step=hook))
    assert runs[0] == runs[1] and [s for s, _ in seen] == [1, 2, 3, 4, 5]
    prompts = captions[0]
    ranks = [C.prompt_rank(model, images[2], prompts, c) for c in range(10)]
    assert all(1 <= r <= 10 for r in ranks)
    # the ranks of the ten prompts over the same images average (K + 1) / 2
    assert np.mean(ranks) == pytest.approx(5.5, abs=1e-5)
    swapped = C.with_word(prompts, 3, prompts[4])
    assert torch.equal(swapped[3], prompts[4]) and torch.equal(prompts[3], captions[0][3])
    scores = C.held_out_scores(model, images[2], labels[2], [prompts, prompts], prompts[:2], held=3,
                               controls={"own": prompts[[3, 3]]})
    assert set(scores) == {"recall", "rank", "decoy_rank", "accuracy_others", "cos_seven",
                           "rank_by_class", "control_rank"}
    assert scores["cos_seven"][3] == pytest.approx(1.0, abs=1e-4)
    # the held-out prompt's rank for its own class is "rank"; its own vector as a control too
    assert scores["rank_by_class"][3] == pytest.approx(scores["rank"], abs=1e-3)
    assert scores["control_rank"]["own"] == pytest.approx(scores["rank"], abs=1e-3)
    with pytest.raises(ValueError, match="decoys"):
        C.held_out_scores(model, images[2], labels[2], [prompts, prompts], prompts[:1], held=3)


def test_fit_simclr_takes_another_loss():
    gen = torch.Generator().manual_seed(0)
    bank = torch.rand(2, 64, 1, 14, 14, generator=gen)
    calls = []

    def positives_only(z1, z2, temperature):
        calls.append(temperature)
        return (1 - F.cosine_similarity(z1, z2)).mean()

    model = C.SimCLR(C.EncoderConfig.tiny())
    C.fit_simclr(model, bank, steps=3, batch_size=16, loss_fn=positives_only, temperature=0.3)
    assert calls == [0.3, 0.3, 0.3]


def test_supervised_run_learns_is_seeded_and_keeps_its_best_checkpoint():
    images, labels = _toy_few_label_data()
    bank = torch.stack([images[0], images[0].flip(-1)])  # (2, 200, 1, 14, 14)
    run = C.supervised_run(bank, images, labels, 5, 0, 3e-3, augment=False, steps=200,
                           eval_every=50)
    val_loss, acc, step = run
    assert acc > 0.5 and step in (50, 100, 150, 200) and math.isfinite(val_loss)
    assert run == C.supervised_run(bank, images, labels, 5, 0, 3e-3, augment=False,
                                   steps=200, eval_every=50)
    augmented = C.supervised_run(bank, images, labels, 5, 0, 3e-3, augment=True, steps=200,
                                 eval_every=50)
    assert augmented != run and augmented[2] % 50 == 0


def test_supervised_run_rejects_bad_input():
    images, labels = _toy_few_label_data()
    bank = torch.stack([images[0], images[0]])
    fewest = int(torch.bincount(labels[0]).min())
    for k, lr, steps in ((0, 1e-3, 10), (fewest + 1, 1e-3, 10), (5, 0.0, 10), (5, 1e-3, 0)):
        with pytest.raises(ValueError):
            C.supervised_run(bank, images, labels, k, 0, lr, augment=False, steps=steps)
