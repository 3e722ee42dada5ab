import math

import pytest
import torch

from dlbook.forecasting import (
    Forecaster, differences, forecast, mae, seasonal_naive, seasonal_naive_drift, train_forecaster)


def series(n=120, rise=0.1):
    t = torch.arange(n, dtype=torch.float32)
    return 300 + rise * t + torch.sin(2 * math.pi * t / 12)


def test_seasonal_naive_repeats_the_last_year():
    y = series(48)
    f = seasonal_naive(y, 30)
    assert torch.equal(f[:12], y[-12:]) and torch.equal(f[12:24], y[-12:])


def test_drift_is_exact_on_a_linear_trend_plus_season():
    y = series(120)
    truth = series(156)[120:]
    assert mae(seasonal_naive_drift(y, 36), truth) < 1e-3
    assert mae(seasonal_naive(y, 36), truth) > 1.0  # without drift it misses the rise


def test_short_history_and_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="12 months"):
        seasonal_naive(torch.ones(5), 3)
    with pytest.raises(ValueError, match="differ"):
        mae(torch.ones(3), torch.ones(4))


def test_forecast_adds_predicted_differences_up():
    y = series(120)
    s = differences(y, 1, 100)
    model = Forecaster(hidden=4)
    with torch.no_grad():  # predict a standardised change of exactly 0: the mean change
        for p in model.parameters():
            p.zero_()
    f = forecast(model, s, 100, 12)
    expected = y[99] + s["mu"] * torch.arange(1, 13)
    assert f.shape == (12,) and torch.allclose(f, expected, atol=1e-4)


def test_train_forecaster_checks_origins_and_returns_each_checkpoint():
    y = series(200)
    s = differences(y, 12, 150)
    with pytest.raises(ValueError, match="origins"):
        train_forecaster(s, 150, 0.01, 0, [5], [140], horizon=12)
    _, fc = train_forecaster(s, 150, 0.01, 0, [5, 10], [150, 160], horizon=12)
    assert sorted(fc) == [5, 10] and all(f.shape == (12,) for f in fc[10])


def test_ar_recovers_a_known_autoregression_and_rolls_out_like_forecast():
    from dlbook.forecasting import ar_forecast, fit_ar

    g = torch.Generator().manual_seed(0)
    z = torch.zeros(600, dtype=torch.float64)
    for t in range(2, 600):  # z_t = 0.1 + 0.5 z_{t-1} - 0.3 z_{t-2} + noise
        z[t] = 0.1 + 0.5 * z[t - 1] - 0.3 * z[t - 2] + torch.randn(1, generator=g)
    series = {"z": z, "mu": 0.0, "sd": 1.0, "lag": 1,
              "levels": torch.cat([torch.zeros(1), z.cumsum(0).float()])}
    coef = fit_ar(series, 501, 2)
    assert torch.allclose(coef, torch.tensor([0.1, 0.5, -0.3], dtype=torch.float64), atol=0.1)
    out = ar_forecast(coef, series, 501, 3)  # levels = previous level + predicted change
    zs = z[:500].tolist()
    level = series["levels"][500].item()
    for k in range(3):
        step = (coef[0] + coef[1] * zs[-1] + coef[2] * zs[-2]).item()
        zs.append(step)
        level += step
        assert out[k].item() == pytest.approx(level, abs=1e-3)
    with pytest.raises(ValueError, match="AR order"):
        fit_ar(series, 501, 0)
    with pytest.raises(ValueError, match="AR order"):
        fit_ar(series, 10, 6)
