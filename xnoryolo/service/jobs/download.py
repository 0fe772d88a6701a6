"""Fetching a `url=` job's video into its folder, bounded by the upload size limit. The URL
and every redirect's target are checked against the network policy first; credentials in
the URL go to its own host as a header, never into a host name (or to a resolver)."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

from xnoryolo.detector.video import Cancelled

from ..policy import HostNotFound, NetworkPolicy, SourceRefused, check_url, redirect_refusal
from ..redact import redact, redact_url, split_credentials
from .layout import JobFolder


class DownloadError(RuntimeError):
    """The video at a job's URL could not be fetched; the message says why (redacted)."""


def download(
    url: str,
    folder: JobFolder,
    limit_mb: float,
    timeout: float,
    cancel: threading.Event,
    policy: NetworkPolicy | None = None,
) -> Path:
    """The video at `url`, saved as the job's input; Cancelled once `cancel` is set.
    `policy`: the addresses it may come from (default: NetworkPolicy's default deny list)."""
    limit = int(limit_mb * 1024 * 1024)
    part = folder.part
    opener, request = checked_request(url, policy or NetworkPolicy())
    try:
        with opener.open(request, timeout=timeout) as resp, part.open("wb") as f:
            size = 0
            while chunk := resp.read(1 << 16):
                if cancel.is_set():
                    raise Cancelled()
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"the video at the URL is larger than {limit_mb:g} MB")
                f.write(chunk)
    except OSError as exc:  # URLError, HTTPError, timeouts
        with contextlib.suppress(OSError):
            part.unlink()
        raise DownloadError(f"cannot download {redact_url(url)}: {redact(str(exc))}") from None
    except (SourceRefused, HostNotFound) as exc:  # a redirect the policy does not allow
        part.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {redact_url(url)}: {redirect_refusal(exc)}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    final = folder.input_for(None)
    part.replace(final)
    return final


def checked_request(
    url: str, policy: NetworkPolicy
) -> tuple[urllib.request.OpenerDirector, urllib.request.Request]:
    """An opener and a request for `url`, checked against `policy` (DownloadError if it is
    not allowed); the opener checks each redirect's target the same way."""
    try:
        check_url(policy, url)
    except (SourceRefused, HostNotFound) as exc:
        raise DownloadError(f"cannot download {redact_url(url)}: {exc}") from None
    bare, credentials = split_credentials(url)
    request = urllib.request.Request(bare)
    if credentials is not None:
        pair = f"{credentials[0]}:{credentials[1] or ''}".encode()
        # Unredirected: a redirect to another host never carries the credentials along.
        request.add_unredirected_header("Authorization", "Basic " + b64encode(pair).decode())
    return urllib.request.build_opener(_CheckedRedirects(policy)), request


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to where `policy` allows (SourceRefused otherwise)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(self.policy, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
