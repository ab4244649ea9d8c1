"""``s4 fuzz --backend rtl``, short: a few hundred random descriptors on the fast design
``s4_sim`` (the shared build) against the functional model, with a fresh seed each run (logged;
``S4_SEED`` replays it, and each report names ``s4 fuzz ... --program I``)."""

import pytest
from rtl_configs import named_config

from s4accel.sim.fuzz import run_rtl_fuzz

pytestmark = [pytest.mark.rtl]


@pytest.mark.parametrize("config", ["tiny", "tiny_v2"])
def test_rtl_fuzz_against_model(config, seed):
    """``tiny_v2``: two vector units (``Config.vec_units``), the fast design's build of
    test_fast_rtl.py."""
    data, reports = run_rtl_fuzz(named_config(config), seed, 300)
    assert data["descriptors"] >= 300 and data["seed"] == seed
    counts = {k: data[k] for k in ("hangs", "exceptions", "stray_writes", "mismatches",
                                   "bad_followups")}
    assert not any(counts.values()), f"seed {seed}: {counts}\n" + "\n".join(reports[:10])
