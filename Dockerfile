FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY publisher ./publisher
COPY channels ./channels
COPY workers ./workers
RUN pip install --no-cache-dir .
ENV PUBLISHER_VAR_DIR=/var/lib/publisher
EXPOSE 8000
CMD ["publisher", "api", "--host", "0.0.0.0", "--port", "8000"]
