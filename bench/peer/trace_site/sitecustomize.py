"""On ``PYTHONPATH`` of heatmon's process only with ``bench/peer_nodered.py --trace``."""

import os

if os.environ.get("HM_TRACE_OUT"):
    from bench.peer.tracing import install

    install(os.environ["HM_TRACE_OUT"])
