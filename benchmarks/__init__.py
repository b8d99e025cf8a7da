"""Side-by-side timings of geonorm against its peers.

Run ``python -m benchmarks --help``; see ``benchmarks/README.md`` for how to
read the ratios and how to add a case. Cases live in ``bench_<area>.py``
modules, which register them with :func:`benchmarks.registry.register`.
"""
