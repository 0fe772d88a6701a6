"""Settings of uploaded-video jobs (`jobs:` in the YAML file, XNORYOLO_JOBS__* in the env)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class JobsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1, le=16, description="jobs processed at once")
    max_upload_mb: float = Field(default=1024.0, gt=0, description="largest video accepted")
    priority: Literal["live", "equal"] = Field(
        default="live",
        description="live: a job frame waits while live inference runs; equal: no waiting",
    )
    live_wait_max_s: float = Field(
        default=2.0, ge=0, description="longest a job frame waits for live inference"
    )
    max_attempts: int = Field(
        default=3, ge=1, description="a job the server died in this often is failed"
    )
    keep_input: bool = Field(default=False, description="keep the uploaded video after the job")
    h264_via_ffmpeg: bool = Field(
        default=True,
        description="where OpenCV cannot write H.264, re-encode the annotated MP4 with ffmpeg",
    )
    url_timeout_s: float = Field(default=30.0, gt=0, description="per read, for url= jobs")
