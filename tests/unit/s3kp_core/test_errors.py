"""Specification of the processing outcomes: codes, messages, retry semantics and recorded status."""

from __future__ import annotations

import pickle

import pytest
from s3kp_core import errors
from s3kp_core.errors import PermanentError, ProcessingError, Skipped, TransientError
from s3kp_core.redact import register_secret, unregister_all
from s3kp_core.results import Status


@pytest.fixture(autouse=True)
def _clean_registry() -> None:
    unregister_all()


@pytest.mark.parametrize(
    ("error_type", "permanent", "status"),
    [
        (PermanentError, True, Status.FAILED),
        (TransientError, False, Status.FAILED),
        (Skipped, True, Status.SKIPPED),
    ],
)
def test_each_outcome_says_whether_it_is_retried_and_how_it_is_recorded(
    error_type: type[ProcessingError], permanent: bool, status: Status
) -> None:
    error = error_type(errors.IMAGE_UNDECODABLE, "cannot identify image file")

    assert isinstance(error, ProcessingError)
    assert error.permanent is permanent
    assert error.status is status
    assert error.code == "image_undecodable"
    assert error.message == "cannot identify image file"


def test_the_reason_stored_on_the_record_carries_code_and_message() -> None:
    reason = PermanentError(errors.IMAGE_TOO_SMALL, "1x1 px is below 16 px").reason()

    assert (reason.code, reason.message) == ("image_too_small", "1x1 px is below 16 px")


def test_the_text_of_the_exception_starts_with_its_code() -> None:
    assert str(TransientError(errors.INFERENCE_UNAVAILABLE, "HTTP 503")) == "inference_unavailable: HTTP 503"


def test_messages_are_redacted_on_construction() -> None:
    """GIVEN a registered API key WHEN an error message quotes a URL with it THEN the key is masked."""
    register_secret("rf_SECRET_123")

    error = PermanentError(errors.INFERENCE_REJECTED, "POST https://x/p/1?api_key=rf_SECRET_123 gave 400")

    assert "rf_SECRET_123" not in error.message
    assert "rf_SECRET_123" not in str(error)
    assert "rf_SECRET_123" not in repr(error)


def test_errors_survive_pickling_with_code_and_type() -> None:
    """Powertools' batch processor and multiprocessing may pickle exceptions."""
    original = Skipped(errors.OUTPUT_PREFIX, "annotated/cat.jpg is one of our outputs")

    copy = pickle.loads(pickle.dumps(original))

    assert type(copy) is Skipped
    assert (copy.code, copy.message) == (original.code, original.message)


def test_codes_are_distinct_snake_case_strings() -> None:
    codes = [value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)]

    assert len(codes) >= 12
    assert len(set(codes)) == len(codes)
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)
