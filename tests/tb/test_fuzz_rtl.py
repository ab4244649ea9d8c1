"""``s4 fuzz --backend rtl``, short: a few hundred random descriptors on the fast design
``s4_sim`` (the shared build) against the functional model, with a fresh seed each run (logged;
``S4_SEED`` replays it, and each report names ``s4 fuzz ... --program I``)."""

import pytest

from s4accel.base.config import load_config
from s4accel.sim.fuzz import run_rtl_fuzz

pytestmark = [pytest.mark.rtl]


def test_rtl_fuzz_against_model(seed):
    data, reports = run_rtl_fuzz(load_config("tiny"), seed, 300)
    assert data["descriptors"] >= 300 and data["seed"] == seed
    counts = {k: data[k] for k in ("hangs", "exceptions", "stray_writes", "mismatches",
                                   "bad_followups")}
    assert not any(counts.values()), f"seed {seed}: {counts}\n" + "\n".join(reports[:10])
