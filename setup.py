"""Only the optional C extension lives here; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# iscore/_speedups.c reads headlines in C for the compiled scorer (iscore/compiled.py). optional=True: where no C
# compiler is at hand the install still succeeds and the same Python code serves, slower.
# -ffp-contract=off: no fused multiply-adds, so every float operation rounds where numpy's does.
setup(ext_modules=[Extension("iscore._speedups", ["iscore/_speedups.c"], optional=True,
                             extra_compile_args=["-ffp-contract=off"])])
