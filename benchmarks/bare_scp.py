"""The bare pynetdicom receiver the benchmark measures Amana's against.

    .venv/bin/python -m benchmarks.bare_scp PORT OUT

pynetdicom's threaded server in one process with Amana's presentation contexts (the same
storage SOP classes and transfer syntaxes, unlimited PDU), each dataset written to a file
as it arrives (pynetdicom's chunked receive, as Amana's receiver has it), and a handler
that only renames that file into OUT and answers Success: no parse, no fsync, no database,
no queue. Whatever Amana's receiver costs beyond this is Amana's own.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pynetdicom import _config, evt

from ingest.scp import build_ae


def serve(port: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".tmp"
    tmp.mkdir(exist_ok=True)
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(tmp)  # same filesystem: adopting a file is a rename
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)

    def on_store(event: Any) -> int:
        os.replace(event.dataset_path, out / f"{uuid.uuid4().hex}.dcm")
        return 0x0000

    ae = build_ae("AMANA")
    ae.start_server(
        ("127.0.0.1", port),
        block=True,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, lambda _e: 0x0000)],
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
