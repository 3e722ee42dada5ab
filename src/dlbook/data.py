"""The book's three small data sets, found wherever the book is installed and checked on load.

    mnist5k.npz     5,000 handwritten digits (500 a class), split 4,000 train / 1,000 test
    names.txt       32,000 US first names, lower-case, one per line
    moby_dick.txt   the text of *Moby-Dick* (chapters 1-135), about 1.2 M characters

and one trained model, gpt_moby_dick.safetensors (chapter 14's GPT; `dlbook.gpt.load_checkpoint`).

The files live in the repository's `data/` folder, and an installed `dlbook` wheel carries the
same files as `dlbook/_data/`, so a notebook on Colab needs no download. `data/README.md` says
where each file comes from and how `data/build_data.py` rebuilds it.

Every load compares the file's sha256 with `CHECKSUMS`. A truncated copy or an accidental edit
then fails with a message that says what to do, instead of producing a puzzling learning curve
three cells later. The check reads the file once per (path, modification time); later loads
of the same unchanged file skip it.

    >>> images, labels = load_mnist5k("train")   # (4000, 28, 28) uint8, (4000,) int64
    >>> x, y = mnist5k_tensors("test")            # (1000, 784) float32 in [0, 1], (1000,) int64
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CHECKSUMS: dict[str, str] = {
    "mnist5k.npz": "9036ed6705666a6888f302a36f253ee65502912193518c3d1211ba4799481717",
    "names.txt": "4d89b8b747db319026c910b0f1cdfd8209f5233493fb80d2f62d8bfea34350c2",
    "moby_dick.txt": "fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240",
    # chapter 14's trained GPT (dlbook.gpt.load_checkpoint), rebuilt by `make checkpoints`
    "gpt_moby_dick.safetensors":
        "405f27082b70fb612a6e08810333a6a40fc31481f74ae69b8e285efb62242ece",
    # chapter 08's sweeps (results and seed-0 models), rebuilt by tools/ch08_sweeps.py
    "ch08_names_sweep.json":
        "56778a055847c9367a9800b0ab94947995f9ddce24006ece0e66fd604e21939b",
    "ch08_lms.safetensors":
        "16dc1da1fa11ddbb4177160d238f25cef1034fdf1c9035847997da59eab3367e",
    "ch08_co2_sweep.json":
        "05e99a72d38915fad473f184b828baece4868d44cc9b23ebfa3543e11e016d90",
    # chapter 07's degradation sweep (dlbook.degradation), rebuilt by tools/degradation_sweep.py
    "degradation_sweep.json":
        "5bf0be797e85812c050e8eca84dbad8888b5ca22b3a827150e16078eb4537379",
    # its 3,000-step runs at rates 0.01 and 0.03, by tools/degradation_sweep.py --long
    "degradation_long.json":
        "0d055be3d6d925b587432ebf3570e59430034613ecad9aaed92b9c7d98087d24",
    # chapter 07's VGG learning rate (dlbook.digit_vgg), rebuilt by tools/vgg_sweep.py
    "vgg_sweep.json":
        "631133330627b9abadb281d9a44ee9a90fa8d1cbab19ed16a27c7d1093bdb5b7",
    # chapter 07's transfer learning rates (dlbook.transfer), by tools/transfer_tuning.py
    "transfer_tuning.json":
        "f21c781adad79bd2ad5dd9450304c18bcd722298dfdbde0b7645b4c6ee6b0270",
    # its ResNet-20's shortcut survival after 100, 600 and 3,000 steps, by
    # tools/shortcut_survival.py
    "shortcut_survival.json":
        "3f104647a1773c6890674152dc946093d1ac0626e720224bceec7c2490120d64",
    # chapter 09's sweeps, too long for the chapter, which re-measures a sample of each
    "seq2seq_curves.json": "56413db3d0229b33a463f9415e702903480490b41ad6b47df9e790ce44ea2b80",
    "seq2seq_fresh.json": "d6bbac8bad1144642b08beaba8a359c4d3cf6c3643973f99cd89c50592e8b5de",
    "seq2seq_sizes.json": "1c077ff368f8e9f2c6fba95c5d13913c3c0ac15ab84c2a000c889271385aef3c",
    "digit_tasks_sweep.json":
        "26f2c98a49710089743281ce618d6d0092494961d44b003620865629f71ef85a",
    # chapter 06's MNIST-1D comparison (dlbook.mnist1d.load_sweep), by tools/mnist1d_sweep.py
    "mnist1d_sweep.json": "005c54d273a9aee2e8b59874f966e799f23c4bb3002abcf3b12e208dd8e1a709",
    # chapter 06's LeNet-5 comparison (dlbook.lenet_sweep.load_sweep), by tools/lenet_sweep.py
    "lenet_sweep.json": "b86ebf707558e5c5824319020f8e62a3d32cb93e47d7a6d76a6c915ae9b66476",
    "ch08_adding.json":
        "cc2c5f5b8a89ddaabb42ab4974b5f257defa5992e2fe04e729321f77654949ce",
    "ch08_names_long.json":
        "fe0191edc9d9a18b09268f889cb3257a3329456618ef7e456196269d48b988f7",
    # the first CO2 sweep's test MAEs of both feeds (history; see data/README.md)
    "ch08_co2_earlier_test.json":
        "a9a1a8244381a760f4f55d5c4fa6a758a77bb181f4597421ed6c375a80ef678a",
    # chapter 11's generative models at equal budgets (dlbook.generative_sweep.load_sweep)
    "ch11_generative_sweep.json":
        "6056221206ade13df789b22a05fa803f5e385392bc0aa976a28cf7d8078ab4ec",
    # chapter 10's VAEs trained to convergence, and the 2-D one's weights, by tools/vae_sweep.py
    "ch10_vae.json": "3eb98e079055f20bf2749ee7a1c1652cfd6d26f5466cd2c90fc1b44c7f468998",
    "ch10_vae2d.safetensors":
        "1e0b25a5651ecd027594a3316f8bad2c9da7a6482e21f42a6f440a22fb3cf962",
    # the 16-D VAE (beta 1) of ch10_vae.json, by tools/vae_sweep.py --vae16
    "ch10_vae16.safetensors":
        "ef1c72db171f6474ed0fdd5434fd2d31034a3bda4fda8dbc86cd7c361b0ae971",
    # seeds 1 and 2 of chapter 10's 2-D and 16-D VAEs, by tools/vae_sweep.py --seeds
    "ch10_vae_seeds.safetensors":
        "cd3059335b4c87f391eaf98794c877fb8f8befe533792f297b1313516f0dfb15",
    # chapter 10's deep and denoising autoencoders, by tools/ae_sweep.py
    "ch10_ae.json": "c898d2e4c7cd47d39bce297e1daba5672e45fe3bbb4e3e4a3c86856fb443200b",
    "ch10_ae.safetensors":
        "0174600f0d19b016235ca5530beb749ce216b1475fb162d836c0e59bc7c0ef3f",
    # chapter 14's scaling sweep and BPE comparison (dlbook.scaling), by tools/ch14_scaling_sweep.py
    "ch14_scaling_sweep.json":
        "5a63526e453750604453ae9f819817242dfe76b2e1b803b5c7c6ea4e40582357",
    # chapter 14's GPT-2 block against today's (dlbook.llama.load_block_sweep)
    "ch14_block_sweep.json":
        "458fde485fa65ab1f240c281c1cadb3bbb6281871dae2adbddec81b3c73782dd",
    # chapter 12's depth study over 10 seeds (dlbook.gnn_depth.load_sweep)
    "ch12_depth_sweep.json":
        "af6c504e38fd0e80c5978e9ec178f36af05e8e3c30cc89aba66a4c10f9e73f9d",
    # chapter 12's GIN, 10 seeds, at 200 and 800 epochs and on each half of the pairs
    "ch12_gin_budget.json":
        "16ca62892527a1e5c6064ce928188a61c5bf5057b3f94c68882c897c3e66157d",
    # chapter 16's few-label comparison, 5 SimCLR runs (dlbook.contrastive.load_few_labels)
    "ch16_few_labels.json":
        "44802e7e28334c60762925327c8aa9d81df88d61468aa3d6d1b717f674adfda4",
    # chapter 16's CLIP budget and held-out sevens (dlbook.contrastive.load_clip_runs)
    "ch16_clip.json":
        "db3a1a2f6cef885b073cbd7281eddde7f0aa9003a78ea48af87a5097587196e1",
    # chapter 16's SimCLR temperature, budget and jitter checks (load_recipe_runs)
    "ch16_simclr.json":
        "eb64eb60323ad83585d2af92bcc305d5b3914d601d134a5e8918080d251e0fc8",
    # chapter 17's CartPole agents over seeds (dlbook.rl.load_runs), by tools/ch17_rl_sweep.py
    "ch17_rl_runs.json":
        "62961a36ffa581b0575b4faea59c428f9e083bad717d15cc077e00554919e3ef",
    # chapter 18's reward model, RLHF, best-of-n and DPO runs over seeds (dlbook.alignment.load_runs),
    # by tools/ch18_alignment_sweep.py
    "ch18_alignment.json":
        "e8a0e6a4dfe943c21b20a2ae7c647b40b11fffa671d705e2f6637f32cafb66c1",
    # chapter 15's retrieval index: MiniLM vectors of Moby-Dick's passages (dlbook.rag),
    # rebuilt by tools/ch15_rag_index.py
    "ch15_moby_index.npz":
        "90432b0ba3075431fada5bd7acad6f916313f08f88fe623b48e6f8bb4517c7fe",
    # chapter 15's SmolLM2 evaluations: bits per byte (float32, int8, 4-bit), RAG log-probabilities,
    # multiple choice and the leak, speculative-decoding runs
    # (dlbook.evaluation.load_llm_evals), rebuilt by tools/ch15_llm_evals.py
    "ch15_llm_evals.json":
        "faa22e189c24114ef5e15d27727614b88b4645fae22ebdf2005aef3826d5b658",
    # chapter 18's SFT and LoRA runs over seeds and learning-rate grids
    # (dlbook.finetune.load_runs), by tools/ch18_finetune_sweep.py
    "ch18_finetune.json":
        "fc75df936b749e18ab308ebbe6052aded9e2d128da552e68b17d29572af243ee",
    # chapter 18's seed-0 masked SFT model (dlbook.finetune.load_sft_model)
    "ch18_sft.safetensors":
        "ec4c1d9a425f4d986bb43c6efab5dab84243c7bbb2973ba077126c81050cbe16",
}
# Files made by a script other than data/build_data.py, and the command that rebuilds each:
# trained models, and the results of experiments too long for a chapter's minute.
REBUILT_BY = {
    "ch15_llm_evals.json": "tools/ch15_llm_evals.py (see data/README.md)",
    "gpt_moby_dick.safetensors": "`make checkpoints` (tools/train_checkpoint.py)",
    "ch08_names_sweep.json": "tools/ch08_sweeps.py (see data/README.md)",
    "ch08_lms.safetensors": "tools/ch08_sweeps.py (see data/README.md)",
    "ch08_co2_sweep.json": "tools/ch08_sweeps.py (see data/README.md)",
    "degradation_sweep.json": "`python tools/degradation_sweep.py`",
    "degradation_long.json": "`python tools/degradation_sweep.py --long`",
    "vgg_sweep.json": "`python tools/vgg_sweep.py`",
    "transfer_tuning.json": "`python tools/transfer_tuning.py`",
    "shortcut_survival.json": "`python tools/shortcut_survival.py`",
    "seq2seq_curves.json": "`python tools/seq2seq_curves.py`",
    "seq2seq_sizes.json": "`python tools/seq2seq_sizes.py`",
    "seq2seq_fresh.json": "tools/seq2seq_fresh.py (see data/README.md)",
    "digit_tasks_sweep.json": "`python tools/digit_tasks_sweep.py`",
    "mnist1d_sweep.json": "`python tools/mnist1d_sweep.py`",
    "lenet_sweep.json": "`python tools/lenet_sweep.py`",
    "ch08_names_long.json": "tools/ch08_sweeps.py (see data/README.md)",
    "ch08_co2_earlier_test.json": "git show b9348b7:data/ch08_co2_sweep.json (see data/README.md)",
    "ch08_adding.json": "tools/ch08_sweeps.py (see data/README.md)",
    "ch11_generative_sweep.json": "`python tools/ch11_sweep.py`",
    "ch10_vae.json": "`python tools/vae_sweep.py` (see data/README.md)",
    "ch10_vae2d.safetensors": "`python tools/vae_sweep.py` (see data/README.md)",
    "ch10_vae16.safetensors": "`python tools/vae_sweep.py --vae16` (see data/README.md)",
    "ch10_vae_seeds.safetensors": "`python tools/vae_sweep.py --seeds` (see data/README.md)",
    "ch10_ae.json": "`python tools/ae_sweep.py` (see data/README.md)",
    "ch10_ae.safetensors": "`python tools/ae_sweep.py` (see data/README.md)",
    "ch14_scaling_sweep.json": "`python tools/ch14_scaling_sweep.py` (see data/README.md)",
    "ch14_block_sweep.json": "tools/llama_block_sweep.py (see data/README.md)",
    "ch12_depth_sweep.json": "tools/gnn_depth_sweep.py (see data/README.md)",
    "ch12_gin_budget.json": "`python tools/gin_budget_sweep.py`",
    "ch16_few_labels.json": "`python tools/ch16_few_labels.py`",
    "ch16_clip.json": "`python tools/ch16_clip.py`",
    "ch16_simclr.json": "`python tools/ch16_simclr.py`",
    "ch17_rl_runs.json": "`python tools/ch17_rl_sweep.py`",
    "ch18_alignment.json": "`python tools/ch18_alignment_sweep.py`",
    "ch18_finetune.json": "`python tools/ch18_finetune_sweep.py`",
    "ch18_sft.safetensors": "`python tools/ch18_finetune_sweep.py sft`",
}

ENV_VAR = "DLBOOK_DATA_DIR"  # set it to a folder to use your own copies of the files first
PACKAGE_DATA_DIR = Path(__file__).parent / "_data"  # inside an installed wheel
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # src/dlbook/data.py -> repo/data

MNIST_SPLITS = ("train", "test", "all")

# (resolved path, mtime in ns, size) of every file whose sha256 already matched.
_verified: set[tuple[str, int, int]] = set()


class DataIntegrityError(ValueError):
    """A data file exists but its bytes are not the ones the book was built with."""


def _search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    return dirs + [PACKAGE_DATA_DIR, REPO_DATA_DIR]


def data_path(name: str) -> Path:
    """Return the path of data file `name`, looking in this order:

    1. the folder in the environment variable DLBOOK_DATA_DIR, if it is set;
    2. `dlbook/_data/` inside the installed package (where a wheel puts the files);
    3. `data/` in the repository this module was imported from (an editable install).

    The first folder that has the file wins. The file is not verified here; the loaders do that.
    """
    looked = []
    for folder in _search_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
        looked.append(str(candidate))
    raise FileNotFoundError(
        f"data file {name!r} not found. Looked in:\n  " + "\n  ".join(looked) + "\n"
        "Reinstall dlbook (the wheel ships the data), or run `python data/build_data.py` in "
        f"the repository, or point {ENV_VAR} at a folder that holds {name}."
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(name: str) -> Path:
    """`data_path(name)`, after checking the file's sha256 against CHECKSUMS."""
    if name not in CHECKSUMS:
        raise ValueError(f"unknown data file {name!r}; the book ships {sorted(CHECKSUMS)}")
    path = data_path(name)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _verified:
        return path
    actual, expected = sha256_of(path), CHECKSUMS[name]
    if actual != expected:
        raise DataIntegrityError(
            f"{name} at {path} is damaged or modified: sha256 is {actual}, expected {expected}. "
            + _how_to_restore(name, path)
        )
    _verified.add(key)
    return path


def _how_to_restore(name: str, path: Path) -> str:
    """The fix for a damaged copy, for the folder it was found in."""
    folder = path.parent.resolve()
    if os.environ.get(ENV_VAR) and folder == Path(os.environ[ENV_VAR]).expanduser().resolve():
        return (f"This copy comes from {ENV_VAR}={os.environ[ENV_VAR]}: replace it with a good "
                f"copy (for example the repository's data/{name}), or unset {ENV_VAR} to use the "
                "copy that ships with dlbook.")
    if folder == REPO_DATA_DIR.resolve():
        rebuild = REBUILT_BY.get(name, "`python data/build_data.py`")
        return (f"In the repository, restore it with `git checkout data/{name}` or rebuild it "
                f"with {rebuild}.")
    return "Reinstall dlbook (`pip install --force-reinstall dlbook`): the wheel ships the data."


def load_mnist5k(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 in 0..255 and labels (N,) int64 in 0..9.

    split: "train" (4,000 digits, 400 a class), "test" (1,000, 100 a class), or "all"
    (train followed by test). The split is fixed, so every chapter tests on the same digits.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"split must be one of {MNIST_SPLITS}, got {split!r}")
    with np.load(verified_path("mnist5k.npz"), allow_pickle=False) as npz:
        if split == "all":
            images = np.concatenate([npz["x_train"], npz["x_test"]])  # (5000, 28, 28)
            labels = np.concatenate([npz["y_train"], npz["y_test"]])  # (5000,)
        else:
            images, labels = npz[f"x_{split}"], npz[f"y_{split}"]
    return images, labels


def mnist5k_tensors(split: str = "train", flatten: bool = True, device=None):
    """The same digits as torch tensors ready for a model.

    Returns x float32 scaled to [0, 1], shape (N, 784) if flatten else (N, 1, 28, 28) (one
    channel, as nn.Conv2d expects), and y int64 of shape (N,), both on `device`.
    """
    import torch  # imported here so that `import dlbook.data` stays cheap

    images, labels = load_mnist5k(split)
    x = torch.from_numpy(images).to(torch.float32) / 255.0  # (N, 28, 28)
    x = x.reshape(len(x), 784) if flatten else x.unsqueeze(1)  # (N, 784) or (N, 1, 28, 28)
    y = torch.from_numpy(labels).to(torch.int64)  # (N,)
    return x.to(device), y.to(device)


def validation_split(x, y, fraction: float = 0.2, seed: int = 0, stratify: bool = True):
    """Carve a validation set out of training data: ``(x_train, y_train), (x_val, y_val)``.

    The book's one rule for experiments: choices (epochs, learning rate, regularization) are made
    on this split, and the test set gives the final number once. ``stratify`` keeps each class's
    share the same in both parts (``y`` integer labels). Works on NumPy arrays and torch tensors.
    """
    n = len(x)
    if n != len(y):
        raise ValueError(f"x and y differ in length: {n} vs {len(y)}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"a fraction of {fraction} of {n} examples leaves an empty split")
    rng = np.random.default_rng(seed)
    labels = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
    if stratify and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        val_idx = []
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            val_idx.append(members[:int(round(fraction * len(members)))])
        val_idx = np.sort(np.concatenate(val_idx))
    else:
        val_idx = np.sort(rng.permutation(n)[:n_val])
    train_mask = np.ones(n, dtype=bool)
    train_mask[val_idx] = False
    train_idx = np.flatnonzero(train_mask)
    if hasattr(x, "device"):  # torch: index with tensors on the data's device
        import torch

        train_idx = torch.as_tensor(train_idx, device=x.device)
        val_idx = torch.as_tensor(val_idx, device=x.device)
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def mnist5k_splits(val_fraction: float = 0.2, flatten: bool = True, seed: int = 0, device=None):
    """MNIST-5k as ``train, val, test`` pairs of tensors: the validation split is carved from the
    4,000 training digits (stratified, 800 by default), the 1,000 test digits are kept apart."""
    train, val = validation_split(*mnist5k_tensors("train", flatten, device), val_fraction, seed)
    return train, val, mnist5k_tensors("test", flatten, device)


def two_spirals(n_per_class: int, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of 1.75 turns in [-2, 2]^2, the classic data no line separates.

    Returns ``points`` (2 n_per_class, 2) float32 and ``labels`` (2 n_per_class,) in {0, 1}: class
    1 is class 0 turned half a turn. Angles are denser near the centre (the radius grows with the
    angle), and ``noise`` is the standard deviation of the Gaussian jitter added to each point.
    """
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    if not noise >= 0:
        raise ValueError(f"noise is a standard deviation: 0 or more, got {noise!r}")
    rng = np.random.default_rng(seed)
    turns = 1.75
    angle = np.sqrt(rng.uniform(0.03, 1, n_per_class)) * turns * 2 * np.pi  # (n,)
    radius = 2 * angle / (turns * 2 * np.pi)  # (n,)
    points, labels = [], []
    for label in (0, 1):
        a = angle + label * np.pi  # the second spiral: the first, half a turn on
        xy = np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)  # (n, 2)
        points.append(xy + noise * rng.standard_normal(xy.shape))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels)


def load_names() -> list[str]:
    """32,000 first names, lower-case a-z, most common first."""
    return verified_path("names.txt").read_text(encoding="ascii").splitlines()


def names_splits(fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0):
    """The names shuffled once (seeded) and cut into ``train, dev, test`` lists (80/10/10, as
    makemore does). The file is sorted by popularity, so an unshuffled cut would test on rare
    names only."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions are three positive shares summing to 1, got {fractions}")
    names = load_names()
    order = np.random.default_rng(seed).permutation(len(names))
    n_train = int(round(fractions[0] * len(names)))
    n_dev = int(round(fractions[1] * len(names)))
    shuffled = [names[i] for i in order]
    return shuffled[:n_train], shuffled[n_train:n_train + n_dev], shuffled[n_train + n_dev:]


def load_moby_dick() -> str:
    """The full text of Moby-Dick as one string (newlines are '\\n')."""
    return verified_path("moby_dick.txt").read_bytes().decode("utf-8")
