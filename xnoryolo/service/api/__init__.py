"""The HTTP API: one router per resource (streams, their outputs, single-image detection,
video jobs, health), the response models, the API-key middleware and the upload reader. The
routers reach the running service only through the dependencies in `deps`."""

from . import detect, docs, health, jobs, outputs, streams

ROUTERS = (
    streams.router,
    outputs.router,
    detect.router,
    jobs.router,
    health.router,
    docs.router,
)
