"""The parts of ``bench/peer_nodered.py``: the systems under test (``services``), InfluxDB's
counting, proxy and ceiling (``influx``), the publisher and the alert subscriber (``load``)."""
