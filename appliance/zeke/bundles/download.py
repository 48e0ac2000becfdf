"""Download a bundle over HTTPS, resuming an interrupted transfer with an HTTP Range request.

The partial file (``<dest>.part``) and what the server said about it (``<dest>.part.json``:
the URL, its ETag / Last-Modified and total size) stay on disk between attempts and between
runs, so an interrupted download (network cut, power cut, killed process) continues where it
stopped. ``If-Range`` makes the server send the whole file again if it changed meanwhile, so
two versions are never stitched together; the signature check after the download catches
anything else.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from zeke.bundles.errors import BundleError

Progress = Callable[[int, "int | None"], None]
CHUNK = 64 * 1024
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 4
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
    """The transfer stopped early; what arrived is kept for the next attempt."""


def is_url(source: str) -> bool:
    return "://" in source


def check_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname:
        raise BundleError(
            f"refusing to download {url}: model bundles are fetched over https:// only",
            hint="use an https:// URL, or download the file yourself and install it by path",
        )
    return url


def _context(cafile: str | os.PathLike | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as err:
        raise BundleError(f"cannot load CA certificates from {cafile}: {err}") from None


def _load_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta))


def _attempt(
    url: str,
    part: Path,
    meta_path: Path,
    context: ssl.SSLContext,
    timeout: float,
    progress: Progress | None,
    after_chunk: Callable[[int], None] | None,
) -> int:
    """One request; return the total size when the file is complete, raise otherwise."""
    meta = _load_meta(meta_path)
    have = part.stat().st_size if part.exists() else 0
    if meta.get("url") != url:
        have, meta = 0, {"url": url}
    headers = {"User-Agent": "zeke-models", "Accept-Encoding": "identity"}
    validator = meta.get("etag") or meta.get("last_modified")
    if have and validator:
        headers["Range"] = f"bytes={have}-"
        headers["If-Range"] = validator
    else:
        have = 0
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and have == meta.get("total"):
            return have
        if err.code == 416:
            part.unlink(missing_ok=True)
            raise _Interrupted("server refused the resume range; starting over") from None
        raise BundleError(
            f"download of {url} failed: HTTP {err.code} {err.reason}",
            hint="check the URL" if err.code in (403, 404, 410) else "try again later",
        ) from None
    with response:
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink(missing_ok=True)
                raise _Interrupted("server answered with the wrong range; starting over")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        meta.update(
            url=url,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            total=total,
        )
        _save_meta(meta_path, meta)
        with open(part, mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.IncompleteRead, OSError) as err:
                    raise _Interrupted(f"connection lost ({type(err).__name__})") from None
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(have, total)
                if after_chunk is not None:
                    out.flush()
                    os.fsync(out.fileno())
                    after_chunk(have)
            out.flush()
            os.fsync(out.fileno())
    if total is not None and have != total:
        raise _Interrupted(f"got {have} of {total} bytes")
    return have


def download(
    url: str,
    dest: Path,
    *,
    cafile: str | os.PathLike | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    after_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Fetch ``url`` to ``dest``, resuming any earlier partial download of the same URL."""
    check_url(url)
    context = _context(cafile)
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        try:
            _attempt(url, part, meta_path, context, timeout, progress, after_chunk)
        except _Interrupted as err:
            reason = str(err)
            continue
        except (urllib.error.URLError, OSError) as err:
            detail = getattr(err, "reason", None) or err
            if isinstance(detail, ssl.SSLCertVerificationError):
                raise BundleError(
                    f"the TLS certificate of {urllib.parse.urlsplit(url).hostname} is not "
                    f"trusted ({detail.verify_message})",
                    hint="check the URL; a private server's CA can be given with --ca-file",
                ) from None
            reason = str(detail)
            continue
        os.replace(part, dest)
        with contextlib.suppress(FileNotFoundError):
            meta_path.unlink()
        return dest
    have = part.stat().st_size if part.exists() else 0
    raise BundleError(
        f"download of {url} stopped after {have} bytes ({reason}); {retries + 1} attempts made",
        hint="run the same command again: it resumes where the download stopped",
    )
