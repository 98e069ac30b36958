"""AWS adapters (SNS publisher, SQS consumer, provisioning, an in-process emulator)."""
