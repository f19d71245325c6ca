"""The functions as template.yaml declares them, read the way the offline stack runs them."""

from __future__ import annotations

from pathlib import Path

from s3kp.local.cfn_template import TEMPLATE_PATH, load_template, parameter_defaults
from s3kp.local.template_functions import template_functions


def test_the_ingest_function_gets_its_event_source_mappings_batch_settings_at_their_defaults() -> None:
    """BatchSize, the batching window and MaximumConcurrency come from the template's event source mapping,
    so the queue runner polls as Lambda does for a stack deployed with default parameters."""
    defaults = parameter_defaults(load_template())
    ingest = template_functions()["IngestFunction"]

    assert ingest.sqs_batch_size == int(defaults["BatchSize"])
    assert ingest.sqs_batching_window_seconds == float(defaults["MaxBatchingWindowSeconds"])
    assert ingest.sqs_maximum_concurrency == int(defaults["MaxConcurrency"])


def test_a_function_no_mapping_feeds_polls_nothing() -> None:
    api = template_functions()["ApiFunction"]

    assert api.sqs_batch_size is None
    assert api.sqs_maximum_concurrency is None
    assert api.sqs_batching_window_seconds == 0.0


MAPPINGS = """
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Topic: {Type: AWS::SNS::Topic}
  Fn: {Type: AWS::Serverless::Function, Properties: {Handler: fn.handler}}
  Other: {Type: AWS::Serverless::Function, Properties: {Handler: other.handler}}
  FromQueueByArn:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Queue.Arn, FunctionName: !GetAtt Fn.Arn, BatchSize: 7}
  ForAnotherFunction:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Queue.Arn, FunctionName: !Ref Other, BatchSize: 3}
  FromSomethingElse:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Topic.Arn, FunctionName: !Ref Other, BatchSize: 9}
"""


def test_each_function_gets_the_mapping_that_feeds_it_from_a_queue(tmp_path: Path) -> None:
    template = tmp_path / TEMPLATE_PATH.name
    template.write_text(MAPPINGS)

    functions = template_functions(template)

    assert functions["Fn"].sqs_batch_size == 7  # named by !GetAtt Fn.Arn
    assert functions["Other"].sqs_batch_size == 3  # the topic's mapping is no queue's
