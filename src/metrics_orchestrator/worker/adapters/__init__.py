"""boto3 adapters of the worker's ports: S3 objects, SNS feedback, the SQS run-request queue."""
