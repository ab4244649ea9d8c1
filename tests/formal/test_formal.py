"""The formal properties (s4accel.sim.formal): each holds on the RTL and fails on its mutant.

Marked ``formal`` and ``slow``: SymbiYosys runs of a few seconds (CSR, command processor) to
about two minutes (DMA engine) each on the 2-core CI machine, about 15 minutes in all. Skipped
when the formal tools are not installed (the ``[fpga]`` and ``[formal]`` extras)."""

import gc

import pytest

from s4accel.sim import formal


@pytest.fixture
def tools():
    try:
        formal.check_tools()
    except formal.FormalToolError as e:
        pytest.skip(str(e))


@pytest.mark.formal
@pytest.mark.slow
@pytest.mark.usefixtures("tools")
def test_every_property_holds():
    rows = formal.run_all()
    failed = {r["property"]: r["log"][-800:] for r in rows if r["result"] != "pass"}
    assert not failed, failed
    assert [r["property"] for r in rows] == [p.name for p in formal.PROPERTIES]


# the mutants that fail fast (a few seconds to a minute each); the DMA ones are checked the
# same way by `s4 formal` users with formal.run(name, mutant=True), see docs/formal.md
@pytest.mark.formal
@pytest.mark.slow
@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize("name", ["csr_axil", "cmd_fault_halt", "cmd_fault_no_dispatch",
                                  "uart_malformed", "uart_axi", "dma_axi_write", "dma_burst"])
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
