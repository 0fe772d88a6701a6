"""Uploaded-video jobs: taking one in (`intake`, `download`), their folders (`layout`), records
(`store`), the workers that run them (`service`) and their metrics."""
