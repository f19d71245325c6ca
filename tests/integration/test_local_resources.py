"""The local resources are the template's: created in a real moto server, checked against template.yaml."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from s3kp.local.cfn_template import load_template
from s3kp.local.resources import LocalResources, api_environment, create_resources, ingest_environment
from tests.conftest import REGION

TEMPLATE = load_template()


@pytest.fixture
def resources(fresh_aws: str) -> LocalResources:
    return create_resources(fresh_aws, region=REGION)


def _client(service: str, resources: LocalResources) -> Any:
    return boto3.client(service, endpoint_url=resources.endpoint_url, region_name=resources.region)


def _drain(resources: LocalResources) -> list[dict[str, Any]]:
    """Every message currently in the ingest queue (deleted as read), as parsed bodies."""
    sqs = _client("sqs", resources)
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _template_properties(logical_id: str) -> dict[str, Any]:
    return dict(TEMPLATE["Resources"][logical_id]["Properties"])


def test_an_image_uploaded_under_the_input_prefix_enqueues_exactly_one_object_created_message(
    resources: LocalResources,
) -> None:
    """GIVEN fresh resources WHEN an image is put under incoming/ THEN one ObjectCreated event names it."""
    key = f"{resources.input_prefix}people/photo.jpg"
    _client("s3", resources).put_object(Bucket=resources.bucket, Key=key, Body=b"not really a jpeg")

    bodies = _drain(resources)

    assert len(bodies) == 1, "moto's s3:TestEvent must have been discarded, and no duplicate sent"
    (record,) = bodies[0]["Records"]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == resources.bucket
    assert record["s3"]["object"]["key"].replace("%2F", "/") == key


@pytest.mark.parametrize("suffix", [".JPG", ".jpeg", ".png", ".webp"])
def test_every_image_suffix_spelling_of_the_template_is_notified(
    resources: LocalResources, suffix: str
) -> None:
    _client("s3", resources).put_object(
        Bucket=resources.bucket, Key=f"{resources.input_prefix}a{suffix}", Body=b"x"
    )

    assert len(_drain(resources)) == 1


@pytest.mark.parametrize(
    "key",
    [
        "annotated/people/photo.jpg",  # the function's own output must not trigger it again
        "predictions/people/photo.jpg",
        "incoming/notes.txt",  # not an image suffix
        "incoming/photo.jpg.pdf",
        "elsewhere/photo.jpg",  # outside the input prefix
    ],
)
def test_objects_outside_the_filter_enqueue_nothing(resources: LocalResources, key: str) -> None:
    _client("s3", resources).put_object(Bucket=resources.bucket, Key=key, Body=b"x")

    assert _drain(resources) == []


def test_output_prefixes_are_the_ones_the_function_gets(resources: LocalResources) -> None:
    environment = ingest_environment(resources, inference_url="http://127.0.0.1:9001", model_id="faces/1")

    assert environment["INPUT_PREFIX"] == resources.input_prefix == "incoming/"
    assert environment["OUTPUT_PREFIX"] == resources.output_prefix
    assert environment["PREDICTIONS_PREFIX"] == resources.predictions_prefix
    assert not resources.output_prefix.startswith(resources.input_prefix)


@pytest.mark.parametrize(
    ("logical_id", "table_attribute"),
    [("ResultsTable", "results_table"), ("IdempotencyTable", "idempotency_table")],
)
def test_table_keys_and_indexes_equal_the_templates(
    resources: LocalResources, logical_id: str, table_attribute: str
) -> None:
    expected = _template_properties(logical_id)
    table = _client("dynamodb", resources).describe_table(TableName=getattr(resources, table_attribute))[
        "Table"
    ]

    assert table["KeySchema"] == expected["KeySchema"]
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == {
        d["AttributeName"]: d["AttributeType"] for d in expected["AttributeDefinitions"]
    }
    assert {
        (index["IndexName"], json.dumps(index["KeySchema"]), index["Projection"]["ProjectionType"])
        for index in table.get("GlobalSecondaryIndexes", [])
    } == {
        (index["IndexName"], json.dumps(index["KeySchema"]), index["Projection"]["ProjectionType"])
        for index in expected.get("GlobalSecondaryIndexes", [])
    }


def test_idempotency_table_expires_items_on_the_templates_ttl_attribute(resources: LocalResources) -> None:
    ttl = _client("dynamodb", resources).describe_time_to_live(TableName=resources.idempotency_table)

    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert (
        ttl["TimeToLiveDescription"]["AttributeName"]
        == _template_properties("IdempotencyTable")["TimeToLiveSpecification"]["AttributeName"]
    )


def test_queue_has_the_templates_visibility_timeout_and_redrive_to_the_dead_letter_queue(
    resources: LocalResources,
) -> None:
    sqs = _client("sqs", resources)
    attributes = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=resources.dlq_url, AttributeNames=["QueueArn"])["Attributes"]

    assert int(attributes["VisibilityTimeout"]) == resources.visibility_timeout
    assert resources.visibility_timeout == _template_properties("IngestQueue")["VisibilityTimeout"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn["QueueArn"],
        "maxReceiveCount": resources.max_receive_count,
    }
    assert resources.max_receive_count == TEMPLATE["Parameters"]["MaxReceiveCount"]["Default"]
    assert attributes["QueueArn"] == resources.queue_arn


def test_secrets_hold_the_api_key_and_a_generated_cursor_key(fresh_aws: str) -> None:
    resources = create_resources(fresh_aws, api_key="the-key-under-test")
    secrets = _client("secretsmanager", resources)

    assert (
        secrets.get_secret_value(SecretId=resources.api_key_secret_arn)["SecretString"]
        == "the-key-under-test"
    )
    assert len(secrets.get_secret_value(SecretId=resources.cursor_secret_arn)["SecretString"]) >= 32


def test_creating_again_reuses_everything_and_keeps_queued_uploads(resources: LocalResources) -> None:
    """GIVEN a queued upload WHEN the resources are created again THEN no message is lost or added."""
    s3 = _client("s3", resources)
    s3.put_object(Bucket=resources.bucket, Key=f"{resources.input_prefix}before.png", Body=b"x")

    again = create_resources(resources.endpoint_url, region=REGION, api_key="rotated-key")

    assert again == resources
    assert len(_drain(again)) == 1
    secret = _client("secretsmanager", again).get_secret_value(SecretId=again.api_key_secret_arn)
    assert secret["SecretString"] == "rotated-key"


def test_environments_cover_every_variable_the_template_sets(resources: LocalResources) -> None:
    ingest = ingest_environment(
        resources, inference_url="http://127.0.0.1:9001", model_id="faces/1", CLASSES="face"
    )
    api = api_environment(resources)

    template_ingest = _template_properties("IngestFunction")["Environment"]["Variables"]
    template_api = _template_properties("ApiFunction")["Environment"]["Variables"]
    assert set(template_ingest) <= set(ingest)
    assert set(template_api) <= set(api)
    assert ingest["MODEL_ID"] == "faces/1"
    assert ingest["CLASSES"] == "face", "overrides win"
    assert ingest["RESULTS_TABLE"] == api["RESULTS_TABLE"] == resources.results_table
    assert ingest["ROBOFLOW_API_KEY_SECRET_ARN"] == resources.api_key_secret_arn
    assert api["CURSOR_SECRET_ARN"] == resources.cursor_secret_arn
    assert ingest["OUTPUT_BUCKET"] == resources.bucket
    for environment in (ingest, api):
        assert environment["AWS_ENDPOINT_URL"] == resources.endpoint_url
        assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"


def test_a_shorter_visibility_timeout_can_be_asked_for_by_tests_that_wait_for_redelivery(
    fresh_aws: str,
) -> None:
    resources = create_resources(fresh_aws, visibility_timeout=2)
    attributes = _client("sqs", resources).get_queue_attributes(
        QueueUrl=resources.queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]

    assert resources.visibility_timeout == int(attributes["VisibilityTimeout"]) == 2
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == resources.max_receive_count


def test_the_results_event_bus_is_the_templates_and_the_ingest_function_gets_its_name(
    resources: LocalResources,
) -> None:
    """`${AWS::StackName}-results` with the local stack's name; creating again reuses it."""
    events = _client("events", resources)
    assert resources.event_bus_name == "s3kp-local-results"
    assert events.describe_event_bus(Name=resources.event_bus_name)["Arn"] == resources.event_bus_arn
    environment = ingest_environment(resources, inference_url="http://127.0.0.1:1", model_id="faces/1")
    assert environment["RESULTS_EVENT_BUS"] == resources.event_bus_name

    again = create_resources(resources.endpoint_url)

    assert (again.event_bus_name, again.event_bus_arn) == (resources.event_bus_name, resources.event_bus_arn)
