# One image for every process of the system; docker-compose.yml picks the process with its command
# (`python -m user_svc`, `python -m outbox_relay`, ...). Only the runtime dependencies: no `stack`/`dev` extras.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

# A non-root user; /keys is where compose mounts the JWT signing key's volume (a new named volume takes the owner
# and mode of the directory it is mounted on).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-log-init --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && mkdir /keys \
    && chown app:app /keys \
    && chmod 700 /keys

WORKDIR /app

# The dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

USER 10001:10001
EXPOSE 8000

# Liveness (the process serves HTTP); compose's own healthchecks ask /ready (database and broker reachable).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=3)"]

# Overridden per process: docker-compose.yml gives each service its command.
CMD ["python", "-c", "print('outbox-shop: run python -m <package>: user_svc, catalog_svc, stock_svc, order_svc, saga, outbox_relay')"]
