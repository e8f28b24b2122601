# The one image of every compose service (api, worker, beat, migrate, sandbox).
FROM python:3.12-slim

# Chinese text on the WeChat cover cards (channels/wechat_render.py looks for Noto CJK).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The exact versions `make` tests with, each checked against its hash; then the project alone.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY publisher ./publisher
COPY channels ./channels
COPY workers ./workers
COPY bench ./bench
RUN pip install --no-cache-dir --no-deps .

# Unprivileged; its home is PUBLISHER_VAR_DIR (beat's schedule, the sandbox's records).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/publisher publisher
USER publisher
ENV PUBLISHER_VAR_DIR=/var/lib/publisher \
    PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["publisher", "api", "--host", "0.0.0.0", "--port", "8000"]
