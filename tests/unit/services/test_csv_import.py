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
