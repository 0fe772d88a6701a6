"""The live streams: what a source URL names and how it opens (`sources`), one capture thread
per stream with supervision and reconnection (`capture`, `backoff`, `status`), the newest-frame
slots the inference workers take from (`scheduler`), the set of streams (`manager`) and the
events that flow through the pipeline (`events`)."""
