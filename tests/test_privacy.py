"""No ID number (身份证号) in a log record, whoever writes it."""

from __future__ import annotations

import logging

import pytest

import tasks  # noqa: F401  (importing the project installs the masking)
from ltc.privacy import mask_ids

ID = "45010319900101123X"


def test_an_id_number_in_a_log_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("prefect.task_runs").warning("person P0001 (%s) billed", ID)
        logging.getLogger("some.library").info(f"row {ID.lower()} rejected")
    assert ID not in caplog.text and ID.lower() not in caplog.text
    assert caplog.messages == ["person P0001 (450***********123X) billed", "row 450***********123x rejected"]


def test_only_whole_id_numbers_are_masked() -> None:
    # a 19-digit bank account and a 16-digit number are not ID numbers; two IDs in one line are both masked
    text = f"acct 6222021234567890123 ref 1234567890123456 ids {ID},110101200001011234"
    assert mask_ids(text) == "acct 6222021234567890123 ref 1234567890123456 ids 450***********123X,110***********1234"
