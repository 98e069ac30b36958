"""The reference worker (SPEC §4.4, §6.1 `worker`): a second application in the package.

It consumes `metric_run_requested`, computes SPEC §3.1 over the projections in S3 and reports
started / heartbeat / completed. It may import `domain`; the control plane never imports it
(tests/unit/test_architecture.py enforces both), so the worker's columnar engine stays an
optional dependency (`pip install 'metrics-orchestrator[worker]'`).
"""
