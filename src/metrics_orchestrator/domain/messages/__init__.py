"""The worker messages (SPEC §4.2, §4.3): one module per message, each with its type string,
its builder and its parser, used alike by the control plane, the reference worker and the
sample worker. Standard library only."""
