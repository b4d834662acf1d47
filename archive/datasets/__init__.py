"""Datasets for adapting and certifying AI models: frozen cohorts of the catalog, patient-level
splits, sealed certification sets, representativeness cards and re-identification checks.

Pure logic (splits, privacy, card data) has no database; `service` and `export` bind it to
the catalog and the archive store.
"""
