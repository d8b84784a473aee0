"""Azurite's queue service (npm package `azurite`, pinned in package.json) over HTTPS
with the test CA, started and stopped by the tests."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "node_modules" / ".bin" / "azurite-queue"
# Azurite's well-known development account (public, documented; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    def __init__(self, ca: trustme.CA, folder: Path):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `make install` (npm ci) first")
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = folder / "azurite-cert.pem", folder / "azurite-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        self.port = _free_port()
        self.log = (folder / "azurite.log").open("wb")
        self.process = subprocess.Popen(
            [str(BINARY), "--queueHost", "127.0.0.1", "--queuePort", str(self.port), "--location", str(folder / "data"),
             "--cert", str(cert_file), "--key", str(key_file), "--skipApiVersionCheck", "--silent", "--loose"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()
        self.connection_string = (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};"
                                  f"QueueEndpoint=https://127.0.0.1:{self.port}/{ACCOUNT};")

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited with {self.process.returncode}; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError("azurite did not start listening within 30 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
