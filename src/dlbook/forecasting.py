"""Forecasting a monthly series: seasonal-naive baselines and a small LSTM on differences.

- :func:`seasonal_naive`, :func:`seasonal_naive_drift`: the baselines a practitioner tries first.
- :func:`differences`: a series of lag-``lag`` differences, standardised with training statistics.
- :class:`Forecaster`: an LSTM that reads standardised differences and predicts the next one.
- :func:`forecast`: roll a forecaster out ``horizon`` months from an origin, feeding its own
  predictions back in, and add them up into levels.
- :func:`train_forecaster`: teacher-forced training on 48-month windows, for fixed step counts,
  with the forecasts made at given checkpoints and origins (rolling-origin evaluation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def seasonal_naive(history, horizon):
    """Next year looks like the last one: the last 12 months, repeated."""
    if len(history) < 12:
        raise ValueError(f"seasonal naive needs 12 months, got {len(history)}")
    return history[-12:].repeat(horizon // 12 + 1)[:horizon]


def seasonal_naive_drift(history, horizon):
    """Seasonal naive plus the mean 12-month rise of the whole history,
    once for every year ahead."""
    yearly = (history[12:] - history[:-12]).mean()  # mean 12-month increase
    years_ahead = torch.arange(horizon) // 12 + 1
    return seasonal_naive(history, horizon) + years_ahead * yearly


def mae(forecast: torch.Tensor, truth: torch.Tensor) -> float:
    if forecast.shape != truth.shape:
        raise ValueError(f"forecast {tuple(forecast.shape)} and truth {tuple(truth.shape)} differ")
    return (forecast - truth).abs().mean().item()


def differences(levels: torch.Tensor, lag: int, n_train: int) -> dict:
    """d[i] = levels[i + lag] - levels[i], standardised with the first ``n_train`` months' stats."""
    d = levels[lag:] - levels[:-lag]  # (N - lag,)
    mu, sd = d[: n_train - lag].mean(), d[: n_train - lag].std()
    return {"z": (d - mu) / sd, "mu": mu.item(), "sd": sd.item(), "lag": lag, "levels": levels}


class Forecaster(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):  # x: (B, T, 1)
        out, state = self.lstm(x, state)  # (B, T, H)
        return self.head(out), state  # (B, T, 1): the next difference


@torch.no_grad()
def forecast(model, series, origin, horizon):
    """Levels for the ``horizon`` months after the first ``origin`` months."""
    z, lag = series["z"], series["lag"]
    levels = series["levels"][:origin].tolist()
    out, state = model(z[: origin - lag].view(1, -1, 1))  # read all known
    for _ in range(horizon):
        step = out[:, -1:]  # (1, 1, 1): the predicted next difference
        change = step.item() * series["sd"] + series["mu"]
        levels.append(levels[-lag] + change)  # y[t] = y[t - lag] + change
        out, state = model(step, state)  # feed the prediction back in
    return torch.tensor(levels[origin:])


class _Predictions(nn.Module):  # fit's loss_fn wants the predictions alone
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[0]


def train_forecaster(series: dict, n_train: int, lr: float, seed: int, checkpoints,
                     origins, horizon: int = 36, window: int = 48, batch_size: int = 32):
    """Train on the first ``n_train`` months; at each step count in ``checkpoints`` forecast
    ``horizon`` months from every origin. Returns (model, {steps: [forecast per origin]})."""
    from .training import fit

    if max(origins) + horizon > len(series["levels"]) or min(origins) < n_train:
        raise ValueError("origins must lie after the training months and leave `horizon` months")
    z_fit = series["z"][: n_train - series["lag"]]
    x = torch.stack([z_fit[i: i + window] for i in range(len(z_fit) - window)])
    y = torch.stack([z_fit[i + 1: i + window + 1] for i in range(len(z_fit) - window)])
    torch.manual_seed(seed)
    model = Forecaster()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    done, forecasts = 0, {}
    for block, steps in enumerate(sorted(checkpoints)):
        fit(_Predictions(model), (x[..., None], y[..., None]), steps=steps - done,
            batch_size=batch_size, optimizer=optimizer, loss_fn=F.mse_loss, metric=None,
            seed=1000 * seed + block, grad_clip=1.0, device="cpu", eval_every=steps - done)
        done = steps
        forecasts[steps] = [forecast(model, series, o, horizon) for o in origins]
    return model, forecasts


def fit_ar(series: dict, n_train: int, p: int) -> torch.Tensor:
    """Least-squares AR(p) on the standardised differences of the first ``n_train`` months:
    z[t] = c + a_1 z[t-1] + ... + a_p z[t-p]. Returns (c, a_1, ..., a_p) as float64."""
    z = series["z"][: n_train - series["lag"]].double()
    if p < 1 or len(z) <= 2 * p:
        raise ValueError(f"AR order p must be between 1 and {(len(z) - 1) // 2}, got {p}")
    rows = torch.stack([z[p - k: len(z) - k] for k in range(1, p + 1)], dim=1)  # (N - p, p)
    design = torch.cat([torch.ones(len(rows), 1, dtype=z.dtype), rows], dim=1)
    return torch.linalg.lstsq(design, z[p:, None]).solution[:, 0]  # (p + 1,)


def ar_forecast(coef: torch.Tensor, series: dict, origin: int, horizon: int) -> torch.Tensor:
    """Levels for the ``horizon`` months after the first ``origin`` months, rolling the AR model
    of :func:`fit_ar` out on its own predictions, as :func:`forecast` does for the LSTM."""
    lag, p = series["lag"], len(coef) - 1
    z = series["z"][: origin - lag].double().tolist()
    levels = series["levels"][:origin].tolist()
    for _ in range(horizon):
        recent = torch.tensor(z[-1: -p - 1: -1], dtype=torch.float64)  # z[t-1], ..., z[t-p]
        step = (coef[0] + coef[1:] @ recent).item()
        z.append(step)
        levels.append(levels[-lag] + step * series["sd"] + series["mu"])
    return torch.tensor(levels[origin:], dtype=torch.float32)
