"""The small real data the course ships in ``data/`` (see data/README.md for provenance and licences)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

#: Photographs in data/, by name: (file, description).
IMAGES: dict[str, tuple[str, str]] = {
    "camera": ("camera.png", "a photographer with a camera (greyscale, 512x512)"),
    "chelsea": ("chelsea.png", "Chelsea the cat (colour, 300x451)"),
    "coffee": ("coffee.png", "a cup of coffee (colour, 400x600)"),
    "brick": ("brick.png", "a brick wall (greyscale, 512x512)"),
}


def data_dir() -> Path:
    """The data folder: $CONVCOURSE_DATA if set, else data/ beside the package (repository checkout)."""
    env = os.environ.get("CONVCOURSE_DATA")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"course data folder not found at {path}. Install the course with 'make lab' from a "
            "checkout of the repository, or set CONVCOURSE_DATA to the folder holding data/."
        )
    return path


def list_images() -> list[str]:
    """Names accepted by :func:`load_image`."""
    return sorted(IMAGES)


def load_image(
    name: str, *, grayscale: bool = False, size: int | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Load a photograph as a tensor with values in [0, 1].

    Colour images come as (3, H, W) and greyscale ones as (H, W) (or any image with
    ``grayscale=True``). ``size`` shrinks the image so that its longer side is at most ``size``
    pixels (area averaging), which keeps loop exercises fast.
    """
    from PIL import Image

    if name not in IMAGES:
        raise ValueError(f"unknown image {name!r}; choose one of {', '.join(list_images())}")
    with Image.open(data_dir() / IMAGES[name][0]) as image:
        image = image.convert("L" if grayscale else image.mode if image.mode in ("L", "RGB") else "RGB")
        if size is not None:
            if size < 1:
                raise ValueError(f"size must be a positive number of pixels, got {size}")
            scale = size / max(image.size)
            if scale < 1:
                image = image.resize(
                    (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX
                )
        array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array.copy()).to(dtype)
    if tensor.ndim == 3:
        tensor = tensor.permute(2, 0, 1).contiguous()
    return tensor


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 handwritten digits (8x8, values 0..16) as float32 images (N, 1, 8, 8) in [0, 1] and labels (N,)."""
    with np.load(data_dir() / "digits_8x8.npz") as archive:
        images, labels = archive["images"], archive["labels"]
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def digits_split(
    test_fraction: float = 0.25, seed: int = 0
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A fixed, stratified train/test split of the digits: ((x_train, y_train), (x_test, y_test))."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    return stratified_split(*load_digits(), test_fraction, seed)


def stratified_split(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int = 0) -> tuple:
    """((x, y) kept, (x, y) held out): ``fraction`` of every label's examples held out, drawn with ``seed``;
    each part keeps the original order."""
    generator = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for label in torch.unique(y).tolist():
        idx = (y == label).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_held = round(len(idx) * fraction)
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    kept_idx, held_idx = torch.cat(kept).sort().values, torch.cat(held).sort().values
    return (x[kept_idx], y[kept_idx]), (x[held_idx], y[held_idx])
