"""Real-time detection service (`xnoryolo serve`).

Two data flows. Live: `streams` (capture) -> `inference` (one shared worker pool) -> `publish`
(hub, snapshots, metrics), wired by `pipeline`. Uploads: `jobs` (intake -> store -> workers ->
result files). `api` holds the HTTP routers; `app` builds the FastAPI app and its lifespan;
`settings` (a leaf) every setting and default; `cli` the `serve` subcommand; `redact` keeps
credentials out of logs and answers."""
