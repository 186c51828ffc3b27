"""The shipped data: checksums match data/README.md, loaders return what they promise."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch

from convcourse import data


def test_checksums_match_the_readme():
    readme = (data.data_dir() / "README.md").read_text()
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M))
    files = sorted(p.name for p in data.data_dir().iterdir() if p.name != "README.md")
    assert sorted(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((data.data_dir() / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", data.list_images())
def test_load_image_shapes_and_range(name):
    image = data.load_image(name)
    assert image.dtype == torch.float32
    assert image.ndim in (2, 3) and (image.ndim == 2 or image.shape[0] == 3)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and float(image.std()) > 0.05
    gray = data.load_image(name, grayscale=True, size=64, dtype=torch.float64)
    assert gray.ndim == 2 and max(gray.shape) == 64 and gray.dtype == torch.float64


def test_load_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown image 'lena'"):
        data.load_image("lena")
    with pytest.raises(ValueError, match="size"):
        data.load_image("camera", size=0)


def test_digits_and_split():
    x, y = data.load_digits()
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert torch.bincount(y).min() >= 170
    (xtr, ytr), (xte, yte) = data.digits_split()
    assert len(ytr) + len(yte) == 1797 and 430 <= len(yte) <= 470
    assert set(yte.tolist()) == set(range(10))
    again = data.digits_split()
    assert torch.equal(again[1][1], yte), "the split must be deterministic"
    with pytest.raises(ValueError):
        data.digits_split(test_fraction=1.5)


def test_missing_data_dir_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVCOURSE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="CONVCOURSE_DATA"):
        data.load_image("camera")
