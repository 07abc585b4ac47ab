# syntax=docker/dockerfile:1
#
# A model repository packed as an image, for the Deployment's init
# container (deploy/kubernetes/deployment.yaml copies /models into the pod).
# Build from the repository root; MODEL_REPOSITORY is a Triton-layout folder
# inside the build context (<model>/config.pbtxt, <model>/<version>/...):
#
#   docker build -f deploy/models.Dockerfile --build-arg MODEL_REPOSITORY=pipelines -t switchyard-models:0.1.0 .

FROM busybox:1.36 AS models
ARG MODEL_REPOSITORY=pipelines
COPY ${MODEL_REPOSITORY}/ /models/
USER 1000:1000
