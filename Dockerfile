# rarewatch service image. Build: docker build -t rarewatch .
# Run:   docker run -v $PWD/config:/etc/rarewatch -e RAREWATCH_HTTP__HOST=0.0.0.0 -p 127.0.0.1:8080:8080 \
#          rarewatch run --config /etc/rarewatch/example.yaml
# Linted with hadolint (tests/unit/test_dockerfile.py). With Redis: deploy/docker-compose.yml; on
# Kubernetes: deploy/k8s/ (two replicas on an external Redis).
# The API binds 127.0.0.1 inside the container unless configured (http.host or RAREWATCH_HTTP__HOST):
# listening on every interface is a choice to make with http.token set, not a default.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY rules ./rules
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# A fixed numeric uid/gid, so that mounted volumes can be given to it and Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 rarewatch \
    && useradd --system --uid 10001 --gid 10001 --home /var/lib/rarewatch --create-home rarewatch
COPY --from=build /install /usr/local
USER 10001:10001
WORKDIR /var/lib/rarewatch
# The rule pack is installed under /usr/local/share/rarewatch/rules (pyproject's data-files); mount your
# own rules and configuration (e.g. at /etc/rarewatch) and pass --config. The environment wins over the
# configuration file: set RAREWATCH_STORE to use another store.
ENV RAREWATCH_STORE=sqlite:////var/lib/rarewatch/state.db
EXPOSE 8080
VOLUME ["/var/lib/rarewatch"]
# Liveness: /healthz answers 200 while the process serves (readiness, for orchestrators: /readyz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["rarewatch"]
CMD ["run"]
