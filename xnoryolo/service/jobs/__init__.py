"""Uploaded-video jobs: taking one in (`intake`), its folder (`layout`) and record (`store`),
the worker pool that runs them (`service`), one job's run (`runner`, fetching url= inputs with
`download`) and their Prometheus metrics (`metrics`)."""
