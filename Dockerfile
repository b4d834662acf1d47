FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-ara \
    tesseract-ocr-fra tesseract-ocr-eng dcmtk \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/amana
COPY pyproject.toml README.md ./
COPY amana amana
COPY ingest ingest
COPY anonymizer anonymizer
COPY archive archive
COPY profiles profiles
RUN pip install --no-cache-dir -e . && useradd --system --uid 900 amana \
 && mkdir -p /var/lib/amana && chown amana /var/lib/amana
USER amana
ENV AMANA_HOME=/var/lib/amana OMP_THREAD_LIMIT=1
ENTRYPOINT ["amana"]
