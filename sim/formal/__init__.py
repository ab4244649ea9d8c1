"""Formal proofs of the accelerator's blocks (Amaranth ``Assert`` / ``Assume``, SymbiYosys).

:data:`PROPERTIES` lists them; :func:`run` proves one, :func:`run_all` all of them (what
``s4 formal`` does). docs/formal.md says what is proven, in which mode and to which depth.
"""

from .properties import PROPERTIES, Mutant, Property, build, formal_config, get
from .runner import FormalToolError, check_tools, run_sby

__all__ = ["PROPERTIES", "Property", "Mutant", "build", "get", "formal_config", "run", "run_all",
           "FormalToolError", "check_tools", "run_sby"]


def run(prop, *, mutant=False, timeout=900, keep=False):
    """Prove ``prop`` (a :class:`Property` or its name); a dict with the keys of
    ``s4 formal --json`` (``property``, ``block``, ``mode``, ``depth``, ``result``,
    ``seconds``) and ``log`` (the tail of the SymbiYosys log)."""
    if isinstance(prop, str):
        prop = get(prop)
    top, ports = build(prop, mutant=mutant)
    result, seconds, log = run_sby(prop.name + ("-mutant" if mutant else ""), top, ports,
                                   mode=prop.mode, depth=prop.depth, timeout=timeout, keep=keep,
                                   memory_map=prop.memory_map)
    return {"property": prop.name, "block": prop.block, "mode": prop.mode,
            "depth": prop.depth, "result": result, "seconds": round(seconds, 1), "log": log}


def run_all(names=None, **kwargs):
    """Run the properties named in ``names`` (all when ``None``), in order."""
    props = PROPERTIES if not names else [get(n) for n in names]
    return [run(p, **kwargs) for p in props]
