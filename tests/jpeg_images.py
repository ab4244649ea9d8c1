"""Test images for the JPEG tests (tests/base/test_jpeg.py, tests/hw/test_jpeg_rtl.py): random
images Pillow encodes, and the Pillow version they are pinned to. (Importable from every test:
pytest puts this directory, the one of the root conftest.py, on sys.path.)"""

import io

import numpy as np
import PIL
from PIL import Image

PILLOW_MAJOR = 13
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def check_pillow():
    major = int(PIL.__version__.split(".")[0])
    assert major == PILLOW_MAJOR, (
        f"these tests compare against Pillow {PILLOW_MAJOR}.x (libjpeg-turbo 3.x); Pillow "
        f"{PIL.__version__} is installed: re-measure the golden decoder against it "
        "(tests/base/test_jpeg.py), then move the pin")


def smooth_image(rng, h, w):
    """Smooth areas and texture, so every coefficient band, long runs, ZRLs and large values
    occur."""
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    noisy = base + rng.integers(-24, 25, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(img, mode, **kw):
    """``img`` as a JPEG in ``mode`` ("grey" or a SUBSAMPLING key); Pillow's ``save`` options."""
    check_pillow()
    buf = io.BytesIO()
    if mode == "grey":
        img.convert("L").save(buf, "JPEG", **kw)
    else:
        img.convert("RGB").save(buf, "JPEG", subsampling=SUBSAMPLING[mode], **kw)
    return buf.getvalue()
