"""Verified downloads: a file is fetched from its mirrors into a temporary file, checked against
its SHA-256, and only then moved into place; nothing unverified is ever kept."""
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass

import numpy as np

from ..errors import ChecksumError, DatasetError, InvalidTypeError, invalid
from .formats import (CIFAR_ARCHIVE, CIFAR_FOLDER, CIFAR_TEST, CIFAR_TRAIN, IDX_STEMS, extract_cifar_archive, find_idx,
                      idx_candidates, remove)


@dataclass
class Sources:
    """Where a dataset's files come from: mirror folders and the SHA-256 each file must have."""
    mirrors: dict
    checksums: dict
    timeout: float


def check_download(download):
    if not isinstance(download, (bool, np.bool_)):
        raise invalid("download", "True or False", download, InvalidTypeError)
    return bool(download)


def check_base_url(base_url):
    if base_url is None:
        return None
    if not isinstance(base_url, str):
        raise invalid("base_url", "None or a URL string", base_url, InvalidTypeError)
    scheme = urllib.parse.urlsplit(base_url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise invalid("base_url", "an http://, https:// or file:// URL of a folder holding the files", base_url)
    return base_url if base_url.endswith("/") else base_url + "/"


def download(url, destination, sha256, timeout):
    """Fetch `url` into `destination` atomically: stream into a temporary file in the same folder,
    check its SHA-256, then os.replace. On any failure the temporary file is removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
            # http.client's read(n) returns short data, without an error, when the server hangs up
            if declared is not None and declared.isdigit() and received != int(declared):
                raise ConnectionError(f"connection closed after {received} of {declared} bytes")
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256.lower():
            raise ChecksumError(f"SHA-256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}. "
                                f"The file was not kept.")
        os.replace(temporary, destination)
    except BaseException:
        remove(temporary)
        raise


class DownloadFailed(Exception):
    def __init__(self, failures):
        super().__init__(failures)
        self.failures = failures


def fetch(dataset, filename, folder, base_url, sources):
    """Download one file of `dataset` into `folder`, trying each mirror in turn."""
    expected = sources.checksums.get(dataset, {}).get(filename)
    if expected is None:
        raise DatasetError(f"no known SHA-256 for {dataset}/{filename}; portanet does not download files it "
                           f"cannot verify")
    bases = (base_url,) if base_url else sources.mirrors.get(dataset, ())
    failures, mismatches = [], []
    for base in bases:
        url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", filename)
        print(f"portanet: downloading {url}", file=sys.stderr)
        try:
            download(url, folder / filename, expected, sources.timeout)
            return folder / filename
        except ChecksumError as error:
            mismatches.append(str(error))
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {type(error).__name__}: {error}")
    if mismatches:
        raise ChecksumError(f"{dataset}/{filename}: every copy downloaded failed verification:\n  "
                            + "\n  ".join(mismatches + failures))
    raise DownloadFailed(failures or [f"{filename}: no mirror configured for {dataset}"])


def download_idx(dataset, folder, base_url, sources):
    for stem in IDX_STEMS:
        if not any((folder / name).is_file() for name in idx_candidates(stem)):
            fetch(dataset, stem + ".gz", folder, base_url, sources)
    files, note = find_idx(folder)
    if files is None:  # pragma: no cover - fetch raises before this
        raise DatasetError(f"{folder}: {note} after download")
    return files


def download_cifar(dataset, folder, base_url, sources):
    archive = fetch(dataset, CIFAR_ARCHIVE, folder, base_url, sources)
    try:
        extract_cifar_archive(archive, folder)
    finally:
        remove(archive)  # verified and extracted (or unusable): either way not kept
    return ("files", {name: folder / CIFAR_FOLDER / name for name in (*CIFAR_TRAIN, CIFAR_TEST)})
