# The two commands of the README: `make run` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian/Ubuntu packages: OCR with Arabic, French and English; dcmtk as the DICOM peer;
# fonts with Arabic glyphs for the pixel tests; PostgreSQL and Redis binaries so the tests
# can start throwaway servers where none runs; Orthanc with its DICOMweb plugin as the
# DICOMweb archive store (AMANA_ARCHIVE_URL) that the tests start on their own ports.
APT_RUN := tesseract-ocr tesseract-ocr-ara tesseract-ocr-fra tesseract-ocr-eng dcmtk \
	orthanc orthanc-dicomweb
APT_TEST := $(APT_RUN) fonts-dejavu-core postgresql redis-server chromium chromium-driver

.PHONY: run test deps-run deps-test venv lint typecheck pytest clean

run: deps-run venv
	$(VENV)/bin/amana run

test: deps-test venv lint typecheck pytest

deps-run:
	@./scripts/apt-ensure.sh $(APT_RUN)
	@./scripts/orthanc-service-off.sh

deps-test:
	@./scripts/apt-ensure.sh $(APT_TEST)
	@./scripts/orthanc-service-off.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || ./scripts/apt-ensure.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest -q -ra

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
