# syntax=docker/dockerfile:1
# exportjob-operator: one image for the operator (the default command) and its
# worker Jobs (which run `exportjob-worker` from this image).
#
#   docker build -t exportjob-operator:dev .
#
# The install steps live in hack/image-install.sh, which CI also runs into a
# fresh venv (hack/check-dockerfile-install.sh, no Docker engine needed), so the
# image and the check cannot drift. Pin the base by digest for reproducible
# builds: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project's wheel, installed with pinned dependencies into /opt/exportjob
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ operator/
COPY hack/image-install.sh hack/
RUN hack/image-install.sh /opt/exportjob /src

# --- runtime: the base image plus the venv; no compiler, no pip, no source tree
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="exportjob-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs large CSV/PDF exports as bounded worker Jobs (operator and worker in one image)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/exportjob-operator/exportjob-operator" \
      org.opencontainers.image.documentation="https://github.com/exportjob-operator/exportjob-operator/blob/main/docs/install.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# uid/gid 65532: the worker Job's runAsUser (operator/exportjob/controller/manifests.py RUN_AS_USER)
# and the chart's podSecurityContext.
# The fonts the PDF writer embeds (pdf.fonts: DejaVu Sans; Noto Sans CJK for Chinese, Japanese, Korean)
# and qpdf (to check a PDF from a debug shell). Keep in step with RUNTIME_PACKAGES in
# hack/check-dockerfile-install.sh and with hack/install-system-deps.sh.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-noto-cjk qpdf \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 65532 exportjob \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin exportjob
COPY --from=build /opt/exportjob /opt/exportjob
ENV PATH=/opt/exportjob/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
CMD ["exportjob-operator"]
