"""Fuzzing the golden JPEG decoder: seeded mutations (bit flips, truncation, inserted and
deleted bytes and markers, in the headers and the entropy-coded data) of files Pillow encodes
either decode or raise JpegError, each within a time bound. The fast tier runs 1,000 cases
(about 5 s; 150 missed a seeded bug that case 348 of seed 1 finds), the slow tier 10,000;
S4_SEED replays a run (a failure names its case)."""

import pytest
from jpeg_images import check_pillow

from s4accel.sim.jpeg_fuzz import FuzzFailure, fuzz_golden


def test_fuzz_golden_1000(seed):
    check_pillow()
    report = fuzz_golden(1000, seed, time_limit=5.0)
    print(f"seed {seed}: {report.decoded} decoded, refused {dict(report.refused)}, "
          f"slowest {report.max_seconds:.3f} s")
    assert report.cases == 1000
    assert report.decoded + sum(report.refused.values()) == 1000
    assert sum(report.refused.values()) > 300   # the mutations do reach the error paths


@pytest.mark.slow
def test_fuzz_golden_10000(seed):
    check_pillow()
    report = fuzz_golden(10000, seed, time_limit=5.0)
    print(f"seed {seed}: {report.decoded} decoded, refused {dict(report.refused)}, "
          f"slowest {report.max_seconds:.3f} s")
    assert report.cases == 10000


def test_fuzz_reports_other_exceptions(seed):
    """The harness itself: a decoder raising anything but JpegError, or hanging, is a
    finding that names its case."""
    def broken(data):
        raise IndexError("list index out of range")

    with pytest.raises(FuzzFailure, match=r"seed \d+ case 0: .*IndexError"):
        fuzz_golden(3, seed, decoder=broken)

    def hangs(data):
        while True:
            pass

    with pytest.raises(FuzzFailure, match="no result within 0.2 s"):
        fuzz_golden(1, seed, decoder=hangs, time_limit=0.2)
