"""What the tests and the benchmarks share: throwaway services, Amana as an operator runs
it, made-up identities, DICOM and image generators, the synthetic corpus and the chaos run.

Benchmarks import from here; nothing here imports `benchmarks` or a test module, so the
dependency runs one way only.
"""
