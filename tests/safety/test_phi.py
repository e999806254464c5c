"""PHI de-identification: every type found, operators, surrogates, date shift, files and CLI."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from medmllm.errors import InvalidRequestError
from medmllm.safety.phi import DeidConfig, Deidentifier, shift_date

NOTE = (
    "Patient: John Smith (MRN: 12345678), DOB 03/04/1956, a 93 y/o man seen at Mercy General "
    "Hospital on Jan 5, 2024 by Dr. Alice Wong.\n"
    "Call 617-555-1234, fax: (617) 555-9876 or john.smith@example.com. SSN 123-45-6789. "
    "Lives at 12 Main Street Apt 4, Boston, MA 02115.\n"
    "Mr. Smith was discharged 2024-01-09. NPI: 1234567890, DEA: AB1234567. Pacemaker serial: "
    "PM-99812X. VIN 1HGCM82633A004352. Portal https://mychart.example.org from 10.0.0.12. "
    "Member ID: XYZ123456789. Account #: 88812345."
)
PLANTED = {
    "NAME": ["John Smith", "Alice Wong", "Smith"],
    "MRN": ["12345678"],
    "DATE": ["03/04/1956", "Jan 5, 2024", "2024-01-09"],
    "AGE": ["93"],
    "HOSPITAL": ["Mercy General Hospital"],
    "PHONE": ["617-555-1234"],
    "FAX": ["(617) 555-9876"],
    "EMAIL": ["john.smith@example.com"],
    "SSN": ["123-45-6789"],
    "ADDRESS": ["12 Main Street Apt 4"],
    "LOCATION": ["Boston"],
    "ZIP": ["02115"],
    "NPI": ["1234567890"],
    "DEA": ["AB1234567"],
    "DEVICE_ID": ["PM-99812X"],
    "VEHICLE_ID": ["1HGCM82633A004352"],
    "URL": ["https://mychart.example.org"],
    "IP": ["10.0.0.12"],
    "HEALTH_PLAN": ["XYZ123456789"],
    "ACCOUNT": ["88812345"],
}


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier()


def test_every_phi_type_is_found_with_its_type(deid: Deidentifier) -> None:
    found = {(s.type, NOTE[s.start : s.end]) for s in deid.analyze(NOTE)}
    for kind, values in PLANTED.items():
        for value in values:
            assert (kind, value) in found, (kind, value, sorted(found))


def test_tag_operator_leaves_no_planted_value(deid: Deidentifier) -> None:
    out = deid.deidentify(NOTE).text
    for values in PLANTED.values():
        for value in values:
            assert value not in out, value
    assert "<NAME>" in out and "<MRN>" in out and "DOB <DATE>" in out
    assert "a <AGE> y/o" in out


def test_ages_under_90_and_clinical_text_are_kept(deid: Deidentifier) -> None:
    text = "A 45 year old with HbA1c 7.2% on metformin 500 mg twice daily; BP 130/85."
    assert deid.deidentify(text).text == text


def test_mask_and_hash(deid: Deidentifier) -> None:
    masked = Deidentifier(operator="mask").deidentify("Call 617-555-1234 now").text
    assert masked == "Call ************ now"
    hasher = Deidentifier(operator="hash", salt="site-one-salt-0123456789")
    a = hasher.deidentify("Email john@example.com").text
    b = hasher.deidentify("Write to john@example.com today").text
    assert re.search(r"<EMAIL:[0-9a-f]{12}>", a)
    assert a.split()[-1] == b.split()[2]  # same value, same hash across documents
    other = (
        Deidentifier(operator="hash", salt="site-two-salt-0123456789")
        .deidentify("Email john@example.com")
        .text
    )
    assert other != a


def test_surrogates_are_consistent_and_seeded_per_document() -> None:
    sur = Deidentifier(operator="surrogate")
    out = sur.deidentify(NOTE).text
    for values in PLANTED.values():
        for value in values:
            assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", out), value
    assert sur.deidentify(NOTE).text == out  # same document, same fakes
    fake_first_last = re.match(r"Patient: (\w+) (\w+)", out)
    assert fake_first_last is not None
    assert f"Mr. {fake_first_last.group(2)} was discharged" in out  # surname kept consistent
    assert "90+" in out
    assert sur.deidentify(NOTE + " ").text != out or True  # a new document may differ


def test_date_shift_keeps_intervals() -> None:
    sur = Deidentifier(operator="surrogate")
    text = "Admitted 01/05/2024, discharged 01/09/2024; follow-up Feb 20, 2024."
    out = sur.deidentify(text).text
    dates = re.findall(r"\d{2}/\d{2}/\d{4}", out)
    assert len(dates) == 2 and "01/05/2024" not in out
    d1, d2 = (datetime.strptime(d, "%m/%d/%Y") for d in dates)
    assert (d2 - d1).days == 4
    text_date = re.search(r"follow-up (\w+ \d+, \d{4})", out)
    assert text_date is not None
    d3 = datetime.strptime(text_date.group(1), "%b %d, %Y")
    assert (d3 - d1).days == (datetime(2024, 2, 20) - datetime(2024, 1, 5)).days


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("03/04/2020", -3, "03/01/2020"),
        ("3/4/2020", -3, "3/1/2020"),
        ("2024-01-09", 30, "2024-02-08"),
        ("January 5th, 2024", -5, "December 31, 2023"),
        ("05-Jan-2024", 1, "06-Jan-2024"),
        ("not a date", 3, None),
    ],
)
def test_shift_date_formats(value: str, days: int, expected: str | None) -> None:
    assert shift_date(value, days) == expected


def test_date_formats_found(deid: Deidentifier) -> None:
    for value in [
        "3/4/56",
        "2019-12-31",
        "12.31.2019",
        "5 March 2021",
        "March 5th",
        "Oct 2019",
        "05-Jan-2024",
        "December 1, 2020",
    ]:
        text = f"Seen on {value} for follow-up."
        spans = deid.analyze(text)
        assert any(s.type == "DATE" and text[s.start : s.end] == value for s in spans), value


def test_entity_selection_and_unknown_type() -> None:
    only_email = Deidentifier(entities=["EMAIL"])
    assert only_email.deidentify("John Smith john@example.com").text == "John Smith <EMAIL>"
    with pytest.raises(InvalidRequestError, match="NAMES"):
        Deidentifier(entities=["NAMES"])
    with pytest.raises(ValueError):
        DeidConfig(operatr="tag")  # type: ignore[call-arg]


def test_no_network_for_emails(deid: Deidentifier, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert deid.deidentify("mail jane.doe@hospital.co.uk").text == "mail <EMAIL>"


# -- files and CLI ----------------------------------------------------------------------------
def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", "deid", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_folder_text_and_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "notes"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text(NOTE, encoding="utf-8")
    rows = [{"id": 1, "note": NOTE, "meta": {"author": "Dr. Alice Wong"}, "label": "John Smith"}]
    (src / "sub" / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    res = _cli(str(src), "-o", str(out), "--field", "note", "--field", "meta")
    assert res.returncode == 0, res.stderr
    assert "de-identified 2 file(s)" in res.stderr
    text = (out / "a.txt").read_text()
    assert "John Smith" not in text and "<NAME>" in text
    row = json.loads((out / "sub" / "b.jsonl").read_text())
    assert "12345678" not in row["note"] and row["meta"]["author"] == "Dr. <NAME>"
    assert row["label"] == "John Smith"  # not a selected field
    assert row["id"] == 1


def test_cli_stdin_jsonl_surrogate() -> None:
    res = _cli(
        "-",
        "--format",
        "jsonl",
        "--operator",
        "surrogate",
        "-q",
        stdin=json.dumps({"text": "Call John Smith at 617-555-1234"}) + "\n",
    )
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    assert "John" not in row["text"] and "617-555-1234" not in row["text"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["/no/such/file.txt"], "no such file"),
        (["-", "--operator", "blur"], "unknown operator"),
        (["-", "--format", "jsonl"], "not valid JSON"),
    ],
)
def test_cli_bad_input(args: list[str], needle: str) -> None:
    res = _cli(*args, stdin="{not json, MRN 12345678\n")
    assert res.returncode == 2
    assert "error:" in res.stderr and needle in res.stderr
    assert "Traceback" not in res.stderr
    assert "12345678" not in res.stderr  # errors never echo the record


def test_cli_folder_needs_output(tmp_path: Path) -> None:
    res = _cli(str(tmp_path))
    assert res.returncode == 2 and "-o OUT_DIR" in res.stderr
