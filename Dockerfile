# rarewatch service image. Build: docker build -t rarewatch .
# Run:   docker run -v $PWD/config:/etc/rarewatch -e RAREWATCH_HTTP__HOST=0.0.0.0 -p 127.0.0.1:8080:8080 rarewatch
# The API binds 127.0.0.1 inside the container unless configured (http.host or RAREWATCH_HTTP__HOST):
# listening on every interface is a choice to make with http.token set, not a default.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY rules ./rules
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --home /var/lib/rarewatch --create-home rarewatch
COPY --from=build /install /usr/local
USER rarewatch
WORKDIR /var/lib/rarewatch
# The rule pack is installed under /usr/local/share/rarewatch/rules (pyproject's data-files).
ENV RAREWATCH_STORE=sqlite:////var/lib/rarewatch/state.db
EXPOSE 8080
VOLUME ["/var/lib/rarewatch"]
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1
ENTRYPOINT ["rarewatch"]
CMD ["run"]
