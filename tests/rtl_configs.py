"""Configurations the tests build besides the presets, one definition each so that the tests
naming them share one simulator build (builds are keyed by the configuration's name)."""

from s4accel.base.config import load_config


def named_config(name):
    """``tiny_v2``: ``tiny`` with two vector units (``Config.vec_units``: both rows' VOPs at
    once); any other name: that preset."""
    if name == "tiny_v2":
        return load_config("tiny").replace(vec_units=2, name="tiny_v2")
    return load_config(name)
