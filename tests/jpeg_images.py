"""Test images for the JPEG tests (tests/base/test_jpeg.py, tests/hw/test_jpeg_rtl.py): random
images Pillow encodes, and the Pillow version they are pinned to. (Importable from every test:
pytest puts this directory, the one of the root conftest.py, on sys.path.)"""

import PIL

from s4accel.sim.workloads import jpeg as _jpeg
from s4accel.sim.workloads.jpeg import SUBSAMPLING, smooth_image  # noqa: F401 (the tests' names)

PILLOW_MAJOR = 13


def check_pillow():
    major = int(PIL.__version__.split(".")[0])
    assert major == PILLOW_MAJOR, (
        f"these tests compare against Pillow {PILLOW_MAJOR}.x (libjpeg-turbo 3.x); Pillow "
        f"{PIL.__version__} is installed: re-measure the golden decoder against it "
        "(tests/base/test_jpeg.py), then move the pin")


def encode(img, mode, **kw):
    """``img`` as a JPEG in ``mode`` ("grey" or a SUBSAMPLING key), Pillow's ``save`` options
    (:func:`s4accel.sim.workloads.jpeg.encode`), after checking the pinned Pillow version."""
    check_pillow()
    return _jpeg.encode(img, mode, **kw)
