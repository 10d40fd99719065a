FROM python:3.11-slim
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY dispatcher dispatcher
COPY workers workers
COPY schemas schemas
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
CMD ["mycpaas", "serve", "--host", "0.0.0.0"]
