import pytest

from steadymail.errors import ValidationError
from steadymail.services.csv_import import parse_contacts


def test_bad_rows_are_reported_by_line_and_good_rows_kept() -> None:
    raw = (
        (
            b"email,first_name,city\n"  # 1
            b"ana@example.com,Ana,Lyon\n"  # 2
            b"not-an-address,Bad,Oslo\n"  # 3
            b"ANA@example.com,Dup,Lyon\n"  # 4 duplicate (case-insensitive)
            b"bo@example.com,Bo\n"  # 5 wrong column count
        )
        + b"caf\xe9@example.com,Latin1,Paris\n"
        + (  # 6 bad encoding
            "\n"  # 7 blank: ignored
            '"zoë@example.com","Zoë, the ""best""",Seoul\n'  # 8 quoted, Unicode
        ).encode()
    )
    good, errors = parse_contacts(raw)
    assert [e for e, _ in good] == ["ana@example.com", "zoë@example.com"]
    assert good[1][1] == {"first_name": 'Zoë, the "best"', "city": "Seoul"}
    assert [(e.line, e.reason.split(" ")[0]) for e in errors] == [
        (3, "invalid"),
        (4, "duplicate"),
        (5, "expected"),
        (6, "not"),
    ]


def test_byte_order_mark_and_crlf_are_accepted() -> None:
    good, errors = parse_contacts(b"\xef\xbb\xbfEmail,name\r\na@example.com,A\r\n")
    assert good == [("a@example.com", {"name": "A"})] and errors == []


@pytest.mark.parametrize(("raw", "msg"), [(b"", "empty"), (b"name,city\nx,y\n", "no 'email'")])
def test_unusable_files_are_refused(raw: bytes, msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        parse_contacts(raw)


def test_hostile_csv_is_parsed_whole() -> None:
    # An address as long as csv's field limit allows, a run of quotes, a huge quoted field,
    # many columns: each is an error for its own row and the good row still comes through.
    raw = (
        b"email,name\n"  # 1
        + b"a" * 130_000
        + b"@example.com,x\n"  # 2
        + b'"' * 100_000
        + b",x\n"  # 3
        + b"ok@example.com,Ok\n"  # 4
        + b"x@example.com"
        + b"," * 200_000
        + b"\n"  # 5
        + b'"'
        + b"y" * 300_000
        + b'",z\n'  # 6: past csv's field limit
    )
    good, errors = parse_contacts(raw)
    assert [e for e, _ in good] == ["ok@example.com"]
    assert [e.line for e in errors][:3] == [2, 3, 5]
    assert "longer than 320" in errors[0].reason


def test_a_file_of_bad_lines_reports_the_first_thousand_and_counts_them_all() -> None:
    from steadymail.services.csv_import import MAX_REPORTED, parse_contacts

    raw = b"email,name\n" + b"x\n" * 5000 + b"ok@example.com,Ok\n"
    good, errors = parse_contacts(raw)
    assert [e for e, _ in good] == ["ok@example.com"]
    assert len(errors) == MAX_REPORTED and errors.total == 5000
    assert errors[0].line == 2
