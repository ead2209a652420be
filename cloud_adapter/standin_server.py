"""`python -m cloud_adapter.standin_server [--no-extra-buffers] ARGS`: `llama_cpp.server`
with ARGS, and with llama.cpp's CPU extra buffer types off when asked (on CPUs where they
crash: edge_worker/portability.py), which the server has no option for."""

from __future__ import annotations

import runpy
import sys

from edge_worker.portability import llama_class_extra_buffers

NO_EXTRA_BUFFERS = "--no-extra-buffers"


def main() -> None:
    args = sys.argv[1:]
    sys.argv = [sys.argv[0], *(arg for arg in args if arg != NO_EXTRA_BUFFERS)]
    with llama_class_extra_buffers(NO_EXTRA_BUFFERS not in args):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
