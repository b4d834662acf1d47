"""Installed as the package `amana_profiles` (see pyproject.toml) so that every install of
amana carries these profiles and pixel rules; the folder itself is data owned by the data
stewards, and this file holds no code."""
