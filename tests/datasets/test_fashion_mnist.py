"""Fashion-MNIST loader on the real Debian files (skipped where the package is absent)."""

import gzip

import pytest
import torch

from geonorm.datasets import DEBIAN_FASHION_MNIST_ROOT, load_fashion_mnist, read_idx

HAVE_FILES = (DEBIAN_FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file()
needs_files = pytest.mark.skipif(
    not HAVE_FILES,
    reason=f"Fashion-MNIST files absent from {DEBIAN_FASHION_MNIST_ROOT}: apt-get install dataset-fashion-mnist",
)


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist(val_size=5000, seed=0)


@needs_files
def test_official_split_sizes_and_value_ranges(data):
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    for part in (data.train, data.val, data.test):
        assert part.images.shape[1:] == (1, 28, 28) and part.images.dtype == torch.float32
        assert float(part.images.min()) == 0.0 and float(part.images.max()) == 1.0
        assert part.labels.dtype == torch.int64
    # The official sets are balanced: 6,000 training and 1,000 test images per class.
    counts = torch.bincount(torch.cat([data.train.labels, data.val.labels]), minlength=10)
    assert counts.tolist() == [6000] * 10
    assert torch.bincount(data.test.labels, minlength=10).tolist() == [1000] * 10


@needs_files
def test_validation_split_is_seeded_and_disjoint(data):
    again = load_fashion_mnist(val_size=5000, seed=0)
    assert torch.equal(again.val.images, data.val.images)
    other = load_fashion_mnist(val_size=5000, seed=1)
    assert not torch.equal(other.val.labels, data.val.labels)
    # train and val partition the 60,000 official images: their pixel totals add up exactly
    # (integers below 2**53 in float64), which a duplicated or dropped image would break.
    raw = read_idx(DEBIAN_FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz")
    total = (torch.cat([data.train.images, data.val.images]).double() * 255.0).round().sum()
    assert float(total) == float(raw.sum(dtype="int64"))


@needs_files
def test_first_official_test_image_matches_the_raw_bytes():
    data = load_fashion_mnist(val_size=0)
    raw = read_idx(DEBIAN_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz")
    assert torch.equal((data.test.images[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(raw[0].copy()))
    assert data.test.labels[:3].tolist() == [9, 2, 1]  # the dataset's documented first labels
    assert len(data.train) == 60000 and len(data.val) == 0


def test_missing_files_name_apt_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*root="):
        load_fashion_mnist(tmp_path)


def test_bad_arguments_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="val_size"):
        load_fashion_mnist(tmp_path, val_size=60000)
    with pytest.raises(TypeError, match="dtype"):
        load_fashion_mnist(tmp_path, dtype=torch.int64)
    bad = tmp_path / "x.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="unsigned bytes"):
        read_idx(bad)
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x03ab")
    with pytest.raises(ValueError, match="3 data bytes"):
        read_idx(bad)
