import os

import numpy as np
import pytest


@pytest.fixture
def seed(request):
    """One seed per test, logged; set S4_SEED to replay a failing run."""
    value = int(os.environ.get("S4_SEED") or np.random.SeedSequence().entropy % (1 << 32))
    print(f"\n{request.node.nodeid}: seed {value} (replay with S4_SEED={value})")
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)
