"""DECODE fuzz on the functional model (s4accel.sim.decode_fuzz): 1,000 mutated JPEG files,
table blocks and descriptor fields, with no hang, no exception, no write outside the output
span, the golden result on success and a usable device after every error."""

from s4accel.sim.decode_fuzz import fuzz_decode


def test_decode_fuzz_1000(seed):
    report = fuzz_decode(1000, seed)
    assert report.cases == 1000
    # the draw reaches success and every data-dependent outcome
    assert report.outcomes["ok"] > 200
    assert {"DECODE_ERROR", "BAD_FIELD", "SCRATCHPAD_OVERFLOW"} <= set(report.outcomes)
    assert report.max_seconds < 2.0
