"""Results out: the publish hub every client subscribes to, annotated JPEG snapshots and the
Prometheus metrics of the live pipeline."""
