"""Prometheus metrics: each worker process counts what it does (`worker_metrics`) and serves
it (`exporter`); the fleet's backlog is read from the database (`backlog_collector`)."""
