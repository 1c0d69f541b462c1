"""portanet.datasets: IDX and CIFAR-10 readers, the search order, downloads, the tabular datasets
and the preprocessing helpers.

Everything runs on small files generated here; downloads go to a local http.server on
127.0.0.1 only (the default mirrors are replaced by a closed local port, so no test can reach
the internet). One test reads the real Fashion-MNIST when Debian's dataset-fashion-mnist is
installed, and is skipped otherwise.
"""
import functools
import gzip
import hashlib
import http.server
import io
import os
import struct
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from portanet import datasets as D
from portanet.errors import InvalidArgumentError, InvalidTypeError, PortanetError

REAL_SYSTEM_DIRS = dict(D.SYSTEM_DIRS)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CLOSED_PORT_URL = "http://127.0.0.1:9/"  # the discard port: nothing listens, refused at once


# ------------------------------------------------------------------------------------------
# Fixture generators
# ------------------------------------------------------------------------------------------

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array):
    """An IDX file's bytes, written independently of the reader under test."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path, data, gz):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_idx_dataset(folder, n_train=6, n_test=4, seed=0, gz=True, dotted=False):
    """Four tiny MNIST-like IDX files in `folder`; returns ((x, y), (x, y)) they hold."""
    rng = np.random.default_rng(seed)
    out = []
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{split}-{kind}-ubyte"
            if dotted:
                name = name.replace("-idx", ".idx")
            write_file(Path(folder) / (name + (".gz" if gz else "")), idx_bytes(array), gz)
        out.append((x, y))
    return tuple(out)


def cifar_bytes(x, y):
    return b"".join(bytes([int(label)]) + image.tobytes() for image, label in zip(x, y))


def make_cifar_batches(folder, per_batch=2, n_test=3, seed=0):
    """Six tiny CIFAR-10 binary batches in `folder`; returns ((x, y), (x, y)) they hold."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in CIFAR_BATCHES:
        n = n_test if name == "test_batch.bin" else per_batch
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / name).write_bytes(cifar_bytes(x, y))
        xs.append(x)
        ys.append(y)
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5])


def make_cifar_archive(path, seed=0, extra=()):
    """A cifar-10-binary.tar.gz holding generated batches (plus `extra` TarInfo members)."""
    staging = Path(path).parent / f"staging-{seed}"
    expected = make_cifar_batches(staging / "cifar-10-batches-bin", seed=seed)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return expected


def assert_same(loaded, expected):
    (x_train, y_train), (x_test, y_test) = loaded
    (ex_train, ey_train), (ex_test, ey_test) = expected
    for got, want in ((x_train, ex_train), (y_train, ey_train), (x_test, ex_test), (y_test, ey_test)):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder):
    """Temporary download/extraction files left anywhere under `folder`."""
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".part")] if Path(folder).exists() else []


# ------------------------------------------------------------------------------------------
# Isolation: no test sees the user's data, cache, Debian folder or the internet
# ------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("PORTANET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(D, "CACHE_DIR", None)
    monkeypatch.setattr(D, "DOWNLOAD_TIMEOUT", 5)
    monkeypatch.setattr(D, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "system" / "fashion-mnist"),),
                                           "mnist": (), "cifar-10": ()})
    monkeypatch.setattr(D, "MIRRORS", {name: (CLOSED_PORT_URL,) for name in D.MIRRORS})
    return tmp_path


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder; /short/... promises more bytes than it sends, then hangs up."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\0" * 98)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1, shut down after the test."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def serve_idx(root, sub, monkeypatch, dataset="fashion-mnist", seed=0):
    """Put a gzip IDX dataset under root/sub and make the module trust exactly those files."""
    expected = make_idx_dataset(root / sub, seed=seed)
    monkeypatch.setitem(D.CHECKSUMS, dataset, {f"{stem}.gz": sha256(root / sub / f"{stem}.gz")
                                               for stem in IDX_STEMS})
    return expected


# ------------------------------------------------------------------------------------------
# IDX reader
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_load_idx_reads_back_exactly(tmp_path, gz, dtype):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    path = write_file(tmp_path / "a-idx3-ubyte", idx_bytes(array), gz)
    got = D.load_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # writable, like Keras' arrays


def test_load_idx_one_dimension_and_gzip_detected_by_content(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    # gzip data under a raw name, raw data under a .gz name: both read by content
    np.testing.assert_array_equal(D.load_idx(write_file(tmp_path / "labels", idx_bytes(labels), True)), labels)
    np.testing.assert_array_equal(D.load_idx(write_file(tmp_path / "l.gz", idx_bytes(labels), False)), labels)


def corrupt_cases():
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    return {
        "empty": (b"", "too short"),
        "bad magic": (b"\x12\x34" + good[2:], "bad magic number 0x12340802"),
        "unknown type code": (b"\x00\x00\x07\x02" + good[4:], "unknown type code 0x07"),
        "zero dimensions": (b"\x00\x00\x08\x00", "zero dimensions"),
        "truncated header": (good[:9], "truncated IDX header"),
        "truncated data": (good[:-1], "truncated IDX file"),
        "trailing bytes": (good + b"\0\0", "2 unexpected trailing bytes"),
    }


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("case", list(corrupt_cases()))
def test_corrupt_idx_rejected_clearly(tmp_path, case, gz):
    data, words = corrupt_cases()[case]
    path = write_file(tmp_path / "bad-idx2-ubyte", data, gz)
    with pytest.raises(D.CorruptDatasetError, match="bad-idx2-ubyte") as info:
        D.load_idx(path)
    assert words in str(info.value)
    assert isinstance(info.value, (PortanetError, ValueError))


def test_truncated_gzip_stream_rejected(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)), mtime=0)
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.CorruptDatasetError, match="corrupt or truncated gzip"):
        D.load_idx(path)


def test_load_idx_argument_errors(tmp_path):
    with pytest.raises(InvalidTypeError, match="Invalid value for `path`"):
        D.load_idx(3)
    with pytest.raises(FileNotFoundError):
        D.load_idx(tmp_path / "missing")


# ------------------------------------------------------------------------------------------
# fashion_mnist / mnist from local folders, and the search order
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["gzip", "raw", "dotted", "subfolder"])
def test_fashion_mnist_from_path(tmp_path, layout):
    folder = tmp_path / "data"
    target = folder / "fashion-mnist" if layout == "subfolder" else folder
    expected = make_idx_dataset(target, gz=layout != "raw", dotted=layout == "dotted")
    assert_same(D.fashion_mnist(path=folder), expected)
    assert_same(D.fashion_mnist(path=str(folder)), expected)


def test_mnist_uses_its_own_subfolders(tmp_path, monkeypatch):
    fashion = make_idx_dataset(tmp_path / "root" / "fashion-mnist", seed=1)
    digits_ = make_idx_dataset(tmp_path / "root" / "mnist", seed=2)
    monkeypatch.setenv("PORTANET_DATA", str(tmp_path / "root"))
    assert_same(D.fashion_mnist(), fashion)
    assert_same(D.mnist(), digits_)


def test_search_order_path_env_system_cache(tmp_path, monkeypatch):
    sizes = {"path": 1, "env": 2, "system": 3, "cache": 4}
    folders = {"path": tmp_path / "explicit", "env": tmp_path / "env" / "fashion-mnist",
               "system": tmp_path / "system" / "fashion-mnist", "cache": tmp_path / "xdg-cache" / "portanet" / "fashion-mnist"}
    for where, folder in folders.items():
        make_idx_dataset(folder, n_train=sizes[where])
    monkeypatch.setenv("PORTANET_DATA", str(tmp_path / "env"))
    assert D.fashion_mnist(path=folders["path"])[0][0].shape[0] == 1
    assert D.fashion_mnist()[0][0].shape[0] == 2
    monkeypatch.delenv("PORTANET_DATA")
    assert D.fashion_mnist()[0][0].shape[0] == 3
    monkeypatch.setitem(D.SYSTEM_DIRS, "fashion-mnist", ())
    assert D.fashion_mnist()[0][0].shape[0] == 4


def test_env_may_list_several_roots_and_incomplete_copies_are_skipped(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "a" / "fashion-mnist", n_train=2)
    (tmp_path / "a" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # incomplete
    make_idx_dataset(tmp_path / "b" / "fashion-mnist", n_train=5)
    monkeypatch.setenv("PORTANET_DATA", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert D.fashion_mnist()[0][0].shape[0] == 5


def test_explicit_path_does_not_fall_back(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "env" / "fashion-mnist")
    monkeypatch.setenv("PORTANET_DATA", str(tmp_path / "env"))
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.fashion_mnist(path=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    assert str(tmp_path / "env") not in message


def test_not_found_lists_every_place_and_how_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTANET_DATA", str(tmp_path / "env"))
    partial = tmp_path / "system" / "fashion-mnist"
    make_idx_dataset(partial)
    (partial / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.fashion_mnist()
    error = info.value
    assert isinstance(error, FileNotFoundError) and isinstance(error, PortanetError)
    message = str(error)
    places = [str(tmp_path / "env" / "fashion-mnist"), str(partial),
              str(tmp_path / "xdg-cache" / "portanet" / "fashion-mnist")]
    positions = [message.index(place) for place in places]
    assert positions == sorted(positions), message
    assert "incomplete, missing train-images-idx3-ubyte(.gz)" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and "$PORTANET_DATA/fashion-mnist/" in message


def test_not_found_without_env_says_so(tmp_path):
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.mnist()
    message = str(info.value)
    assert "$PORTANET_DATA is not set" in message
    assert "apt-get" not in message  # Debian packages no MNIST
    assert "mnist(download=True)" in message


def test_cache_dir_locations(tmp_path, monkeypatch):
    assert D.cache_dir("mnist") == tmp_path / "xdg-cache" / "portanet" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.cache_dir() == tmp_path / "home" / ".cache" / "portanet"
    monkeypatch.setattr(D, "CACHE_DIR", str(tmp_path / "mine"))
    assert D.cache_dir("cifar-10") == tmp_path / "mine" / "cifar-10"


def test_idx_content_checks(tmp_path):
    def broken(stem, array):
        folder = tmp_path / stem / array.dtype.name
        make_idx_dataset(folder)
        write_file(folder / f"{stem}.gz", idx_bytes(array), True)
        return folder

    with pytest.raises(D.CorruptDatasetError, match=r"expected images as IDX uint8 of shape \(N, 28, 28\)"):
        D.mnist(path=broken("train-images-idx3-ubyte", np.zeros((6, 27, 28), np.uint8)))
    with pytest.raises(D.CorruptDatasetError, match="expected labels"):
        D.mnist(path=broken("t10k-labels-idx1-ubyte", np.zeros(4, np.int32)))
    with pytest.raises(D.CorruptDatasetError, match="holds 6 images but .* holds 5 labels"):
        D.mnist(path=broken("train-labels-idx1-ubyte", np.zeros(5, np.uint8)))
    with pytest.raises(D.CorruptDatasetError, match=r"labels must be in \[0, 9\], found 12"):
        D.mnist(path=broken("train-labels-idx1-ubyte", np.full(6, 12, np.uint8)))


def test_loader_argument_errors(tmp_path):
    with pytest.raises(InvalidTypeError, match="Invalid value for `path`.*Received: path=42"):
        D.fashion_mnist(path=42)
    with pytest.raises(InvalidTypeError, match="Invalid value for `download`"):
        D.mnist(download="yes")
    with pytest.raises(InvalidArgumentError, match="Invalid value for `base_url`"):
        D.mnist(download=True, base_url="ftp://example.invalid/")
    with pytest.raises(InvalidTypeError, match="Invalid value for `base_url`"):
        D.cifar10(base_url=3)
    file = tmp_path / "file"
    file.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="Invalid value for `path`. Expected a folder"):
        D.mnist(path=file)


# ------------------------------------------------------------------------------------------
# Downloads (local server only)
# ------------------------------------------------------------------------------------------

def test_download_into_cache_then_reuse(server, monkeypatch, tmp_path):
    root, url = server
    expected = serve_idx(root, "fm", monkeypatch)
    assert_same(D.fashion_mnist(download=True, base_url=url + "fm"), expected)
    cache = tmp_path / "xdg-cache" / "portanet" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in IDX_STEMS)
    for stem in IDX_STEMS:
        assert (cache / f"{stem}.gz").read_bytes() == (root / "fm" / f"{stem}.gz").read_bytes()
    for stem in IDX_STEMS:
        (root / "fm" / f"{stem}.gz").unlink()  # the server has nothing now: the cache must serve
    assert_same(D.fashion_mnist(), expected)
    assert_same(D.fashion_mnist(download=True, base_url=url + "fm"), expected)


def test_download_tries_the_mirrors_in_order(server, monkeypatch, tmp_path):
    root, url = server
    expected = serve_idx(root, "mirror2", monkeypatch, dataset="mnist")
    monkeypatch.setitem(D.MIRRORS, "mnist", (CLOSED_PORT_URL, url + "missing/", url + "mirror2/"))
    assert_same(D.mnist(download=True), expected)


def test_download_only_fetches_missing_files_into_path(server, monkeypatch, tmp_path):
    root, url = server
    expected = serve_idx(root, "fm", monkeypatch)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "train-images-idx3-ubyte.gz").write_bytes((root / "fm" / "train-images-idx3-ubyte.gz").read_bytes())
    (root / "fm" / "train-images-idx3-ubyte.gz").unlink()  # would fail if it were fetched again
    assert_same(D.fashion_mnist(path=target, download=True, base_url=url + "fm/"), expected)
    assert not (tmp_path / "xdg-cache").exists()


def test_download_with_wrong_checksum_is_rejected_and_not_kept(server, monkeypatch, tmp_path):
    root, url = server
    serve_idx(root, "fm", monkeypatch)
    bad = root / "fm" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.ones((4, 28, 28), np.uint8)), mtime=0))  # valid IDX, wrong bytes
    with pytest.raises(D.ChecksumError, match="SHA-256 mismatch") as info:
        D.fashion_mnist(download=True, base_url=url + "fm/")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value) and "not kept" in str(info.value)
    cache = tmp_path / "xdg-cache" / "portanet" / "fashion-mnist"
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    assert leftovers(cache) == [] and not any(p.name.startswith(".") for p in cache.iterdir())
    with pytest.raises(D.DatasetNotFoundError, match="incomplete, missing t10k-images"):
        D.fashion_mnist()


def test_interrupted_download_leaves_no_partial_file(server, monkeypatch, tmp_path):
    root, url = server
    serve_idx(root, "short", monkeypatch)
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.fashion_mnist(download=True, base_url=url + "short/")
    message = str(info.value)
    assert "Downloading failed" in message and url + "short/train-images-idx3-ubyte.gz" in message
    assert "connection closed after 100 of 100000 bytes" in message
    cache = tmp_path / "xdg-cache" / "portanet" / "fashion-mnist"
    assert list(cache.iterdir()) == []


def test_download_404_and_offline_errors_list_places_and_urls(server, monkeypatch, tmp_path):
    root, url = server
    serve_idx(root, "fm", monkeypatch)
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.fashion_mnist(download=True, base_url=url + "elsewhere/")
    assert "HTTP Error 404" in str(info.value)
    with pytest.raises(D.DatasetNotFoundError) as info:  # default mirrors: a closed local port
        D.fashion_mnist(download=True)
    message = str(info.value)
    assert CLOSED_PORT_URL + "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "system" / "fashion-mnist") in message
    assert str(tmp_path / "xdg-cache" / "portanet" / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_files_without_a_known_checksum_are_never_downloaded(server, monkeypatch):
    root, url = server
    make_idx_dataset(root / "fm")
    monkeypatch.setitem(D.CHECKSUMS, "mnist", {})
    with pytest.raises(D.DatasetError, match="does not download files it cannot verify"):
        D.mnist(download=True, base_url=url + "fm/")


def test_published_checksums_are_well_formed():
    for table in (D.CHECKSUMS, D.RAW_SHA256):
        for files in table.values():
            for digest in files.values():
                assert len(digest) == 64 and int(digest, 16) >= 0
    assert set(D.CHECKSUMS["fashion-mnist"]) == {f"{s}.gz" for s in IDX_STEMS}
    assert set(D.CHECKSUMS["mnist"]) == {f"{s}.gz" for s in IDX_STEMS}
    assert set(D.CHECKSUMS["cifar-10"]) == {"cifar-10-binary.tar.gz"}


# ------------------------------------------------------------------------------------------
# CIFAR-10 binary
# ------------------------------------------------------------------------------------------

def test_cifar_batch_layout(tmp_path):
    record = bytes([7]) + bytes(range(256)) * 12  # label 7, then 3072 pixel bytes
    path = tmp_path / "one.bin"
    path.write_bytes(record * 2)
    x, y = D.load_cifar10_batch(path)
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8 and y.tolist() == [7, 7]
    flat = np.frombuffer(record[1:], np.uint8)
    np.testing.assert_array_equal(x[1, 0], flat[:1024].reshape(32, 32))  # red plane, row-major
    np.testing.assert_array_equal(x[1, 2], flat[2048:].reshape(32, 32))  # blue plane


@pytest.mark.parametrize("layout", ["batches-folder", "inside-it", "subfolder"])
def test_cifar10_from_generated_files(tmp_path, layout):
    folder = {"batches-folder": tmp_path / "d" / "cifar-10-batches-bin", "inside-it": tmp_path / "d",
              "subfolder": tmp_path / "d" / "cifar-10" / "cifar-10-batches-bin"}[layout]
    expected = make_cifar_batches(folder)
    (x_train, y_train), (x_test, y_test) = loaded = D.cifar10(path=tmp_path / "d")
    assert x_train.shape == (10, 3, 32, 32) and y_train.shape == (10,) and x_test.shape == (3, 3, 32, 32)
    assert_same(loaded, expected)


def test_cifar10_corrupt_batches(tmp_path):
    folder = tmp_path / "d" / "cifar-10-batches-bin"
    make_cifar_batches(folder)
    (folder / "data_batch_3.bin").write_bytes((folder / "data_batch_3.bin").read_bytes()[:-5])
    with pytest.raises(D.CorruptDatasetError, match="data_batch_3.bin.*not a positive multiple of the 3073-byte"):
        D.cifar10(path=tmp_path / "d")
    (folder / "data_batch_3.bin").write_bytes(bytes([10]) + bytes(3072))
    with pytest.raises(D.CorruptDatasetError, match=r"labels must be in \[0, 9\], found 10"):
        D.cifar10(path=tmp_path / "d")
    (folder / "test_batch.bin").unlink()
    with pytest.raises(D.DatasetNotFoundError, match="missing test_batch.bin"):
        D.cifar10(path=tmp_path / "d")


def test_cifar10_archive_found_is_extracted_next_to_it(tmp_path):
    archive = tmp_path / "d" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    expected = make_cifar_archive(archive)
    assert_same(D.cifar10(path=tmp_path / "d"), expected)
    assert sorted(p.name for p in (tmp_path / "d" / "cifar-10-batches-bin").iterdir()) == sorted(CIFAR_BATCHES)
    assert_same(D.cifar10(path=archive), expected)  # the archive file itself as path=
    archive.unlink()
    assert_same(D.cifar10(path=tmp_path / "d"), expected)  # now from the extracted batches


def test_cifar10_archive_in_read_only_folder_goes_to_cache(tmp_path, monkeypatch):
    root = tmp_path / "ro"
    (root / "cifar-10").mkdir(parents=True)
    expected = make_cifar_archive(root / "cifar-10" / "cifar-10-binary.tar.gz")
    monkeypatch.setenv("PORTANET_DATA", str(root))
    real_access = os.access
    monkeypatch.setattr(D.os, "access", lambda p, mode: False if Path(p) == root / "cifar-10" else real_access(p, mode))
    assert_same(D.cifar10(), expected)
    assert not (root / "cifar-10" / "cifar-10-batches-bin").exists()
    assert (tmp_path / "xdg-cache" / "portanet" / "cifar-10" / "cifar-10-batches-bin" / "test_batch.bin").is_file()


def malicious_members():
    def regular(name, data=b"evil"):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, data

    def special(name, kind, target=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        return info, None

    return {
        "absolute": regular("/tmp/portanet-evil-absolute"),
        "dotdot": regular("cifar-10-batches-bin/../../portanet-evil-dotdot"),
        "symlink": special("cifar-10-batches-bin/link", tarfile.SYMTYPE, "/etc/passwd"),
        "hardlink": special("cifar-10-batches-bin/hard", tarfile.LNKTYPE, "/etc/passwd"),
        "device": special("cifar-10-batches-bin/dev", tarfile.CHRTYPE),
        "fifo": special("cifar-10-batches-bin/fifo", tarfile.FIFOTYPE),
    }


@pytest.mark.parametrize("kind", list(malicious_members()))
def test_cifar10_malicious_archive_member_rejected(tmp_path, kind):
    folder = tmp_path / "d" / "inner"
    folder.mkdir(parents=True)
    archive = folder / "cifar-10-binary.tar.gz"
    make_cifar_archive(archive, extra=[malicious_members()[kind]])
    with pytest.raises(D.CorruptDatasetError, match="unsafe archive member") as info:
        D.cifar10(path=folder)
    assert "nothing was extracted" in str(info.value)
    assert not (folder / "cifar-10-batches-bin").exists()
    assert not Path("/tmp/portanet-evil-absolute").exists()
    assert not (tmp_path / "portanet-evil-dotdot").exists() and not (tmp_path / "d" / "portanet-evil-dotdot").exists()


def test_cifar10_archive_without_batches_rejected(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(D.CorruptDatasetError, match="lacks cifar-10-batches-bin/data_batch_1.bin"):
        D.cifar10(path=archive)
    archive.write_bytes(b"not a tar at all")
    with pytest.raises(D.CorruptDatasetError, match="not a readable tar archive"):
        D.cifar10(path=archive)


def test_cifar10_download_verifies_extracts_and_removes_archive(server, monkeypatch, tmp_path):
    root, url = server
    expected = make_cifar_archive(root / "cifar-10-binary.tar.gz")
    monkeypatch.setitem(D.CHECKSUMS, "cifar-10", {"cifar-10-binary.tar.gz": sha256(root / "cifar-10-binary.tar.gz")})
    assert_same(D.cifar10(download=True, base_url=url), expected)
    cache = tmp_path / "xdg-cache" / "portanet" / "cifar-10"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-bin"]
    assert leftovers(cache) == []
    assert_same(D.cifar10(), expected)


def test_cifar10_download_of_malicious_archive_rejected(server, monkeypatch, tmp_path):
    root, url = server
    make_cifar_archive(root / "cifar-10-binary.tar.gz", extra=[malicious_members()["dotdot"]])
    monkeypatch.setitem(D.CHECKSUMS, "cifar-10", {"cifar-10-binary.tar.gz": sha256(root / "cifar-10-binary.tar.gz")})
    with pytest.raises(D.CorruptDatasetError, match="unsafe archive member"):
        D.cifar10(download=True, base_url=url)
    cache = tmp_path / "xdg-cache" / "portanet" / "cifar-10"
    assert list(cache.iterdir()) == []


def test_cifar10_download_checksum_mismatch(server, monkeypatch, tmp_path):
    root, url = server
    make_cifar_archive(root / "cifar-10-binary.tar.gz")
    with pytest.raises(D.ChecksumError, match="c4a38c50a1bc5f3a"):  # the real digest is expected
        D.cifar10(download=True, base_url=url)
    assert list((tmp_path / "xdg-cache" / "portanet" / "cifar-10").iterdir()) == []


def test_cifar10_not_found_message(tmp_path):
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.cifar10()
    message = str(info.value)
    assert "CIFAR-10 not found" in message and "cifar-10-binary.tar.gz" in message
    assert "cifar10(download=True)" in message and "apt-get" not in message


# ------------------------------------------------------------------------------------------
# Real Fashion-MNIST from Debian's dataset-fashion-mnist
# ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.setattr(D, "SYSTEM_DIRS", REAL_SYSTEM_DIRS)
    (x_train, y_train), (x_test, y_test) = D.fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert y_train.min() == 0 and y_train.max() == 9
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    # Debian recompressed the .gz files; their contents are the published ones
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        raw = gzip.decompress((DEBIAN_FASHION / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == D.RAW_SHA256["fashion-mnist"][stem]


# ------------------------------------------------------------------------------------------
# scikit-learn's tabular datasets
# ------------------------------------------------------------------------------------------

def test_iris_shapes_split_and_determinism():
    (x_train, y_train), (x_test, y_test) = D.iris()
    assert x_train.shape == (120, 4) and x_test.shape == (30, 4)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert np.bincount(y_test).tolist() == [10, 10, 10] and np.bincount(y_train).tolist() == [40, 40, 40]
    again = D.iris()
    np.testing.assert_array_equal(again[0][0], x_train)
    np.testing.assert_array_equal(again[1][1], y_test)
    other = D.iris(seed=1)
    assert not np.array_equal(other[0][0], x_train)
    (x2, _), (x3, _) = D.iris(test_size=0.5)
    assert x2.shape == (75, 4) and x3.shape == (75, 4)


def test_digits_scaling_and_images():
    (x_train, y_train), (x_test, y_test) = D.digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    (raw, _), _ = D.digits(scale=False)
    assert raw.max() == 16.0
    np.testing.assert_array_equal(raw / 16, x_train)
    (images, labels), (images_test, _) = D.digits(images=True)
    assert images.shape == (1437, 1, 8, 8) and images_test.shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(images.reshape(-1, 64), x_train)
    np.testing.assert_array_equal(labels, y_train)
    with pytest.raises(InvalidTypeError, match="`images`"):
        D.digits(images="yes")


def test_breast_cancer_shapes_and_stratification():
    (x_train, y_train), (x_test, y_test) = D.breast_cancer()
    assert x_train.shape == (455, 30) and x_test.shape == (114, 30)
    assert x_train.dtype == np.float32 and set(np.unique(y_train)) == {0, 1}
    total = np.bincount(np.concatenate([y_train, y_test]))  # 212 malignant, 357 benign
    assert abs(np.bincount(y_test)[0] / 114 - total[0] / 569) < 0.01


def test_tabular_without_sklearn_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    for loader in (D.iris, D.digits, D.breast_cancer):
        with pytest.raises(D.MissingDependencyError, match="pip install scikit-learn") as info:
            loader()
        assert isinstance(info.value, ImportError) and loader.__name__ in str(info.value)


# ------------------------------------------------------------------------------------------
# to_categorical
# ------------------------------------------------------------------------------------------

def test_to_categorical_keras_semantics():
    out = D.to_categorical([0, 2, 1])
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert D.to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)  # trailing 1 dropped
    assert D.to_categorical(np.zeros((2, 3), np.int64), num_classes=5).shape == (2, 3, 5)
    np.testing.assert_array_equal(D.to_categorical(2, num_classes=3), [0, 0, 1])
    assert D.to_categorical(np.array([1.0, 0.0]), dtype="int8").dtype == np.int8
    assert D.to_categorical(np.array([], np.int64), num_classes=3).shape == (0, 3)
    np.testing.assert_array_equal(D.to_categorical(np.array([3], np.uint8)).argmax(-1), [3])


def test_to_categorical_errors():
    with pytest.raises(InvalidArgumentError, match=r"Invalid value for `y`. Expected class indices >= 0. Received: y=-1"):
        D.to_categorical([0, -1])
    with pytest.raises(InvalidArgumentError, match=r"class indices in \[0, 2\] for num_classes=3. Received: y=3"):
        D.to_categorical([3], num_classes=3)
    with pytest.raises(InvalidArgumentError, match="integer class indices"):
        D.to_categorical([0.5])
    for bad in (0, -2, True, 2.0):
        with pytest.raises(InvalidArgumentError, match="`num_classes`"):
            D.to_categorical([0], num_classes=bad)
    with pytest.raises(InvalidArgumentError, match="cannot be inferred"):
        D.to_categorical([])
    with pytest.raises(InvalidTypeError, match="`y`"):
        D.to_categorical(["a", "b"])
    with pytest.raises(InvalidTypeError, match="`dtype`"):
        D.to_categorical([0], dtype="not-a-dtype")


# ------------------------------------------------------------------------------------------
# train_test_split
# ------------------------------------------------------------------------------------------

def test_split_sizes_pairing_and_determinism():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    (x_train, y_train), (x_test, y_test) = D.train_test_split(x, y, test_size=0.25, seed=3)
    assert x_test.shape == (3, 2) and x_train.shape == (7, 2)  # ceil(2.5) = 3
    np.testing.assert_array_equal(x_train[:, 0] * 5, y_train)  # rows stay paired
    np.testing.assert_array_equal(x_test[:, 0] * 5, y_test)
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == y.tolist()
    again = D.train_test_split(x, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[1][1], y_test)
    assert D.train_test_split(x, y, test_size=4, seed=0)[1][0].shape == (4, 2)
    (_, y_tr), (_, y_te) = D.train_test_split(x, y, test_size=2, shuffle=False)
    assert y_tr.tolist() == y[:8].tolist() and y_te.tolist() == [80, 90]


def test_split_unseeded_varies():
    y = np.arange(1000)
    first = D.train_test_split(y, y)[1][1]
    assert any(not np.array_equal(first, D.train_test_split(y, y)[1][1]) for _ in range(3))


def test_split_stratified():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    x = np.arange(100)
    (x_train, y_train), (x_test, y_test) = D.train_test_split(x, y, test_size=0.2, seed=0, stratify=y)
    assert np.bincount(y_test).tolist() == [10, 6, 4] and np.bincount(y_train).tolist() == [40, 24, 16]
    np.testing.assert_array_equal(y[x_test], y_test)
    (_, y_train), (_, y_test) = D.train_test_split(x, y, test_size=7, seed=0, stratify=y)
    assert y_test.size == 7 and y_train.size == 93
    onehot = D.to_categorical(y)
    (_, _), (_, y_hot) = D.train_test_split(x, onehot, test_size=0.2, seed=0, stratify=onehot)
    assert y_hot.sum(axis=0).tolist() == [10, 6, 4]


def test_split_errors():
    x = np.arange(10)
    for bad in (0.0, 1.0, 0, 10, -1, 1.5):
        with pytest.raises(InvalidArgumentError, match="`test_size`"):
            D.train_test_split(x, x, test_size=bad)
    for bad in (True, "0.2", None):
        with pytest.raises(InvalidTypeError, match="`test_size`"):
            D.train_test_split(x, x, test_size=bad)
    with pytest.raises(InvalidArgumentError, match=r"as many labels as x has examples \(10\)"):
        D.train_test_split(x, x[:9])
    with pytest.raises(InvalidArgumentError, match="`seed`"):
        D.train_test_split(x, x, seed=-1)
    with pytest.raises(InvalidArgumentError, match="`shuffle`. Expected True when stratify"):
        D.train_test_split(x, x, shuffle=False, stratify=x % 2)
    with pytest.raises(InvalidArgumentError, match="at least 2 examples of every class"):
        D.train_test_split(x, x, stratify=np.array([0] * 9 + [1]))
    with pytest.raises(InvalidArgumentError, match="`stratify`. Expected class labels of length 10"):
        D.train_test_split(x, x, stratify=x[:5])
    with pytest.raises(InvalidArgumentError, match="at least one example of each of the 5 classes"):
        D.train_test_split(x, x, test_size=2, stratify=x % 5)


# ------------------------------------------------------------------------------------------
# standardize / mean_subtract
# ------------------------------------------------------------------------------------------

def test_standardize_uses_training_statistics():
    rng = np.random.default_rng(0)
    x_train = rng.normal(5.0, 3.0, size=(200, 4))
    x_train[:, 3] = 7.0  # constant feature: divided by 1
    x_test = rng.normal(5.0, 3.0, size=(50, 4))
    a, b, mean, std = D.standardize(x_train.astype(np.float32), x_test.astype(np.float32), return_stats=True)
    assert a.dtype == b.dtype == np.float32 and mean.shape == std.shape == (1, 4)
    np.testing.assert_allclose(a[:, :3].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(a[:, :3].std(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(a[:, 3], 0)
    np.testing.assert_allclose(b, (x_test - x_train.mean(0)) / np.where(x_train.std(0) > 0, x_train.std(0), 1),
                               rtol=1e-4, atol=1e-4)
    assert D.standardize(x_train).dtype == np.float64
    assert D.standardize(np.arange(6, dtype=np.uint8).reshape(3, 2)).dtype == np.float32


def test_standardize_per_channel_images_and_errors():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    out = D.standardize(images, axis=(0, 2, 3))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)
    whole = D.standardize(images, axis=None)
    assert abs(float(whole.mean())) < 1e-5
    with pytest.raises(InvalidArgumentError, match="`x_test.shape`"):
        D.standardize(images, images[:, :2])
    D.standardize(images, images[:3], axis=(0, 2, 3))  # fewer test examples is fine
    for bad in (4, (0, 0), "0", ()):
        with pytest.raises(InvalidArgumentError, match="`axis`"):
            D.standardize(images, axis=bad)
    with pytest.raises(InvalidTypeError, match="`x_train`"):
        D.standardize(np.array(["a"]))
    with pytest.raises(InvalidArgumentError, match="`x_train`"):
        D.standardize(np.zeros((0, 3)))


def test_mean_subtract_removes_the_training_mean_image():
    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, size=(30, 3, 4, 4), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(5, 3, 4, 4), dtype=np.uint8)
    a, b, mean = D.mean_subtract(x_train, x_test, return_mean=True)
    assert a.dtype == b.dtype == mean.dtype == np.float32 and mean.shape == (3, 4, 4)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(b, x_test - x_train.mean(axis=0), atol=1e-4)
    assert D.mean_subtract(x_train).shape == x_train.shape
    with pytest.raises(InvalidArgumentError, match="`x_test.shape`"):
        D.mean_subtract(x_train, x_test[:, :2])
