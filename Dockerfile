# One image for the worker, the producer, migrations and Flower. torch from PyPI brings its own CUDA runtime;
# the host needs only the NVIDIA driver and container toolkit.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/cache/huggingface CATALOG_HOME=/var/lib/catalog
WORKDIR /app
COPY pyproject.toml README.md ./
COPY catalog_enrich ./catalog_enrich
COPY vlm ./vlm
COPY worker ./worker
COPY producer ./producer
COPY db ./db
COPY migrations ./migrations
RUN pip install torch==2.13.0 && pip install . && useradd --create-home catalog \
    && mkdir -p /var/lib/catalog /cache/huggingface && chown catalog /var/lib/catalog /cache/huggingface
USER catalog
CMD ["catalog", "--help"]
