"""Chapter 10's deep and denoising autoencoders trained to convergence, too long for the chapter:
writes data/ch10_ae.json and data/ch10_ae.safetensors. One command makes both:

    DLBOOK_CPU_THREADS=1 nice -n 19 python tools/ae_sweep.py

On MNIST-5k's grey digits (the chapter's train 3,200 / validation 800 / test 1,000 split):

1. Deep autoencoders (AutoencoderConfig.deep, one hidden layer of HIDDEN ReLUs each side, the
   decoder started at the mean image) at each code size of CODE_SIZES and seed of SEEDS: Adam at
   step size LR on batches of 128, early stopping on the validation squared error (PATIENCE
   epochs without a better one, at most MAX_EPOCHS; the best epoch's weights kept). Per run: the
   validation curve, the best epoch, the test error, and for code size 16 the error against the
   clean test digits at each noise level of SIGMAS.
2. Denoising autoencoders: the same recipe with hidden layers of DENOISER_HIDDEN, each training
   image corrupted by Gaussian noise of a level drawn from NOISE_RANGE (dlbook.vae.add_noise),
   early stopping on noisy validation digits (one level per digit from the same range, seed 0),
   at each code size of DENOISER_CODES with seed 0; the code size of the lowest noisy validation
   error chosen, then seeds 1 and 2 at it. Per run: curve, best epoch, validation error, test
   error at each noise level of SIGMAS.
The weights of the seed-0 deep autoencoders with codes of 2 and 16 and of the chosen seed-0
denoiser go to the safetensors file. Seeded, one CPU thread: a rerun on the same versions gives the
same files.

``--extend`` keeps the runs already in data/ch10_ae.json (and the weights in the safetensors
file) and trains only the denoiser runs the current DENOISER_CODES and the choice still lack:
how the grid grew when its first pick was its edge.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dlbook.data import mnist5k_splits, sha256_of
from dlbook.training import adam, fit
from dlbook.vae import Autoencoder, AutoencoderConfig, add_noise, squared_error

ROOT = Path(__file__).resolve().parents[1]
CODE_SIZES = (2, 4, 8, 16, 32)
HIDDEN, LR = (128,), 1e-2
DENOISER_CODES = (16, 32, 64, 128, 256)
DENOISER_HIDDEN, DENOISER_LR = (256,), 3e-3
NOISE_RANGE = (0.0, 0.8)
SIGMAS = tuple(round(0.1 * i, 1) for i in range(9))
MAX_EPOCHS, PATIENCE, BATCH = 200, 5, 128
SEEDS = (0, 1, 2)


def noisy_test(x_test):
    """The chapter's noisy test digits: one generator seed (1) per level."""
    return {s: add_noise(s, torch.Generator().manual_seed(1))(x_test) for s in SIGMAS}


def train(code, hidden, lr, seed, x_train, val, mean, transform=None):
    torch.manual_seed(seed)
    model = Autoencoder(AutoencoderConfig.deep(code), hidden=hidden).start_at_mean(mean)
    history = fit(model, (x_train, x_train), val, epochs=MAX_EPOCHS, batch_size=BATCH,
                  optimizer=lambda p: adam(p, lr=lr), loss_fn=squared_error, metric=None,
                  patience=PATIENCE, seed=seed, transform=transform, progress=False)
    return model, history


@torch.no_grad()
def noisy_errors(model, x_test, noisy):
    return [round(squared_error(model(noisy[s]), x_test).item(), 4) for s in SIGMAS]


def main() -> int:
    global CODE_SIZES, DENOISER_CODES, MAX_EPOCHS, SEEDS
    torch.set_num_threads(1)
    out_folder = ROOT / "data"
    if "--smoke" in sys.argv:  # every code path in seconds, written to /tmp
        CODE_SIZES, DENOISER_CODES, MAX_EPOCHS, SEEDS = (2, 16), (16, 32, 64), 2, (0, 1)
        out_folder = Path("/tmp/ch10_ae_smoke")
    start = time.process_time()
    (x_train, _), (x_val, _), (x_test, _) = mnist5k_splits()
    mean = x_train.mean(0)
    noisy = noisy_test(x_test)
    weights, deep, den, cpu_before = {}, {}, {}, 0
    extend = "--extend" in sys.argv
    if extend:  # the runs already made, and their weights
        old = json.loads((out_folder / "ch10_ae.json").read_text(encoding="utf-8"))
        deep, den = old["results"]["deep"], old["results"]["denoiser"]
        cpu_before = old["cpu_seconds"]
        weights = load_file(str(out_folder / "ch10_ae.safetensors"))
    for code in CODE_SIZES if not extend else ():
        for seed in SEEDS:
            model, h = train(code, HIDDEN, LR, seed, x_train, (x_val, x_val), mean)
            with torch.no_grad():
                row = {"val": [round(v, 4) for v in h.val_loss], "best_epoch": h.best_epoch,
                       "test": round(squared_error(model(x_test), x_test).item(), 4)}
            if code == 16:
                row["test_noisy"] = noisy_errors(model, x_test, noisy)
            deep[f"{code}:{seed}"] = row
            if seed == 0 and code in (2, 16):
                weights.update({f"ae{code}.{k}": v.contiguous()
                                for k, v in model.state_dict().items()})
            print(f"deep {code}:{seed} best {h.best_epoch}/{len(h.val_loss)} "
                  f"test {row['test']:.2f}", flush=True)
    noisy_val = add_noise(NOISE_RANGE, torch.Generator().manual_seed(0))(x_val)
    models = {}

    def denoiser(code, seed):
        if f"{code}:{seed}" in den:
            return
        model, h = train(code, DENOISER_HIDDEN, DENOISER_LR, seed, x_train,
                         (noisy_val, x_val), mean, transform=add_noise(NOISE_RANGE))
        den[f"{code}:{seed}"] = {"val": [round(v, 4) for v in h.val_loss],
                                 "best_epoch": h.best_epoch,
                                 "val_best": round(min(h.val_loss), 4),
                                 "test_noisy": noisy_errors(model, x_test, noisy)}
        models[code, seed] = model
        print(f"denoiser {code}:{seed} best {h.best_epoch}/{len(h.val_loss)} "
              f"val {min(h.val_loss):.2f}", flush=True)

    for code in DENOISER_CODES:
        denoiser(code, 0)
    chosen = min(DENOISER_CODES, key=lambda c: den[f"{c}:0"]["val_best"])
    for seed in SEEDS[1:]:
        denoiser(chosen, seed)
    if (chosen, 0) in models:  # else its weights are in the file already
        weights = {k: v for k, v in weights.items() if not k.startswith("denoiser.")}
        weights.update({f"denoiser.{k}": v.contiguous()
                        for k, v in models[chosen, 0].state_dict().items()})
    cpu = cpu_before + round(time.process_time() - start)
    out = {"command": "DLBOOK_CPU_THREADS=1 nice -n 19 python tools/ae_sweep.py",
           "code_sizes": list(CODE_SIZES), "hidden": list(HIDDEN), "lr": LR,
           "denoiser_codes": list(DENOISER_CODES), "denoiser_hidden": list(DENOISER_HIDDEN),
           "denoiser_lr": DENOISER_LR, "noise_range": list(NOISE_RANGE),
           "sigmas": list(SIGMAS), "max_epochs": MAX_EPOCHS, "patience": PATIENCE,
           "batch_size": BATCH, "seeds": list(SEEDS),
           "versions": {"python": platform.python_version(), "torch": torch.__version__},
           "cpu_seconds": cpu,
           "results": {"deep": deep, "denoiser": den, "denoiser_code": chosen}}
    out_folder.mkdir(parents=True, exist_ok=True)
    (out_folder / "ch10_ae.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    save_file(weights, str(out_folder / "ch10_ae.safetensors"))
    print(f"{cpu} s of CPU; data files in {out_folder}")
    for name in ("ch10_ae.json", "ch10_ae.safetensors"):  # for dlbook.data.CHECKSUMS
        path = out_folder / name
        print(f"{name}: {path.stat().st_size:,} bytes, sha256 {sha256_of(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
