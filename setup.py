"""Package discovery for the one import root ``s4accel`` over the fixed layout.

``s4accel`` is ``s4accel/`` (shared definitions and the CLI), ``s4accel.hw`` is ``hw/``,
``s4accel.sw`` is ``sw/`` and ``s4accel.sim`` is ``sim/``. Every subpackage below those roots is
found here, so a new one cannot be left out of a wheel. ``s4accel.constraints`` is
``constraints/``: the FPGA pin files, package data (pyproject.toml) read through
:mod:`importlib.resources`, so ``s4 fpga build`` works from an installed wheel too. The rest of
the metadata is in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {"s4accel": "s4accel", "s4accel.hw": "hw", "s4accel.sw": "sw", "s4accel.sim": "sim",
         "s4accel.constraints": "constraints"}

packages = []
for name, directory in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(directory)
                 if f"{name}.{sub}" not in ROOTS]

setup(packages=sorted(set(packages)), package_dir=ROOTS)
