"""The OCI image of the Bento, built and run on a machine with no registry and no Docker engine.

`make container` (python -m rec_models.deploy build): a Debian bookworm base image made locally
(debootstrap, cached under .cache/container/), a wheelhouse of the serving set, BentoML's
Dockerfile template with an offline Python set-up, `podman build`. `make container-test` starts
the image, probes HTTP and gRPC and stops it. Nothing here is imported by the service.
"""
