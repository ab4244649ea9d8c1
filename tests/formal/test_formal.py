"""The formal properties (s4accel.sim.formal): each holds on the RTL and fails on its mutant.

The solver runs are marked ``formal`` and ``slow``: a few seconds (CSR, command processor,
every mutant) to about three minutes (DMA engine, SPU) each on the 2-core CI machine, about
15 minutes of CPU in all. Skipped when the formal tools are not installed (the ``[fpga]`` and
``[formal]`` extras). Select them with ``pytest -m formal tests/formal``."""

import gc

import pytest

from s4accel.sim import formal


@pytest.fixture
def tools():
    try:
        formal.check_tools()
    except formal.FormalToolError as e:
        pytest.skip(str(e))


NAMES = [p.name for p in formal.PROPERTIES]


# one test per property, so that `pytest -n 2` (CI) spreads them over its workers
@pytest.mark.formal
@pytest.mark.slow
@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize("name", NAMES)
def test_property_holds(name):
    row = formal.run(name)
    assert row["result"] == "pass", row["log"][-800:]
    assert set(row) >= {"property", "block", "mode", "depth", "result", "seconds"}


# every mutant fails within seconds (a counterexample a few cycles deep)
@pytest.mark.formal
@pytest.mark.slow
@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize("name", NAMES)
def test_mutant_fails(name):
    row = formal.run(name, mutant=True)
    assert row["result"] == "fail", row["log"][-800:]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_mutants_apply_to_the_source():
    """Every mutant's text is in its module exactly once (a refactor that moves it fails
    here, not silently in a proof)."""
    for p in formal.PROPERTIES:
        assert p.mutant is not None, p.name
        formal.build(p, mutant=True)
    gc.collect()    # (the unused-elaboratable warnings of these builds, here, filtered)


def test_unknown_property():
    with pytest.raises(KeyError, match="no formal property 'nope'"):
        formal.get("nope")


def test_cli_list_and_unknown_property(capsys):
    from s4accel.cli import main

    assert main(["formal", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(p.name in listed for p in formal.PROPERTIES)
    assert main(["formal", "--property", "nope"]) == 2
    assert "no formal property 'nope'" in capsys.readouterr().err
