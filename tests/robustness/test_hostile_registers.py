"""`attt inventory import` of a register that a province's staff hand over: damaged or hostile
workbooks and CSV files end in one line and exit 2 (no traceback), in bounded time and memory,
and nothing is written unless the whole import loads as an inventory."""

import os
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from attt.scanner.cli import main
from attt.scanner.register import MAX_UNPACKED_BYTES
from tests.robustness.conftest import run_attt

HEADER = ("Tên hệ thống", "Cơ quan chủ quản", "Cấp độ", "Địa chỉ IP / tên miền")
SHEET = "xl/worksheets/sheet1.xml"
NS = '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def row(number: int, *texts: str) -> str:
    return (
        f'<row r="{number}">'
        + "".join(cell(f"{'ABCD'[i]}{number}", t) for i, t in enumerate(texts))
        + "</row>"
    )


def sheet(rows: str, dimension: str) -> bytes:
    data = f"<sheetData>{row(1, *HEADER)}{rows}</sheetData>"
    return f'{NS}<dimension ref="{dimension}"/>{data}</worksheet>'.encode()


def system_rows(count: int) -> str:
    return "".join(row(n, f"Hệ thống {n}", "Sở A", "3", f"10.213.1.{n}") for n in range(2, 2 + count))


def workbook(path: Path, parts: dict[str, bytes | None]) -> Path:
    """A workbook as openpyxl writes it, with some parts replaced (None: left out)."""
    plain = path.with_name("plain.xlsx")
    book = Workbook()
    book.active.append(HEADER)
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            data = parts.get(name, source.read(name))
            if data is not None:
                out.writestr(name, data)
    return path


def attt_import(register: Path, *more: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        ["inventory", "import", str(register), "--province", "Hà Tĩnh", "--scope", "10.213.0.0/16", *more],
    )
    assert isinstance(result.exception, SystemExit | None), result.exception  # no traceback
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("attt: error:"), err
    for word in words:
        assert word in lines[0], err


DAMAGED: dict[str, dict[str, bytes | None]] = {
    "sheet-not-xml": {SHEET: b"<worksheet><sheetData><row"},
    "styles-not-xml": {"xl/styles.xml": b"<styleSheet><numFmts"},
    "workbook-not-xml": {"xl/workbook.xml": b"<workbook"},
    # a number cell whose cached value is text, under a DDE formula
    "number-cell-holding-text": {SHEET: sheet('<row r="2"><c r="A2"><f>cmd|\' /C calc\'!A0</f>'
                                              "<v>Sở A</v></c></row>", "A1:D2")},
    "column-beyond-xfd": {SHEET: sheet('<row r="2"><c r="ZZZZZ2" t="inlineStr"><is><t>x</t></is></c></row>',
                                       "A1:D2")},
    "row-number-not-a-number": {SHEET: sheet('<row r="abc"><c t="inlineStr"><is><t>x</t></is></c></row>',
                                             "A1:D2")},
    "sheet-missing": {SHEET: None},
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_workbook_is_one_line_and_exit_2(damage: str, tmp_path: Path) -> None:
    code, out, err = attt_import(workbook(tmp_path / "register.xlsx", DAMAGED[damage]))
    assert_one_line_error(code, err, "register.xlsx")
    assert out == ""


def test_a_stale_dimension_loses_no_row(tmp_path: Path) -> None:
    """openpyxl stops at the last row the sheet claims to have: three systems were dropped
    without a word when the sheet said A1:D2."""
    path = workbook(tmp_path / "register.xlsx", {SHEET: sheet(system_rows(4), "A1:C2")})
    code, out, err = attt_import(path)
    assert code == 0, err
    assert out.count("address: 10.213.1.") == 4


def test_a_sheet_claiming_every_cell_is_read_quickly(tmp_path: Path) -> None:
    far = '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    wide = "".join(cell(f"XF{c}3", "x") for c in "ABCD")  # a row reaching the last columns
    rows = system_rows(1) + f'<row r="3">{wide}</row>' + far
    path = workbook(tmp_path / "register.xlsx", {SHEET: sheet(rows, "A1:XFD1048576")})
    ran = run_attt(
        ["inventory", "import", str(path), "--province", "X", "--scope", "10.213.0.0/16"], timeout=60
    )
    assert ran.returncode == 2 and "more than 10000 rows" in ran.stderr, ran.terminal
    assert ran.cpu_seconds < 8, ran.cpu_seconds  # was 18 s: every empty row padded to 16,384 cells


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    path = workbook(tmp_path / "bomb.xlsx", {})
    block = b"B" * (1 << 20)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part,
    ):
        for _ in range((MAX_UNPACKED_BYTES >> 20) + 8):
            part.write(block)
    assert path.stat().st_size < 2 << 20
    ran = run_attt(["inventory", "import", str(path), "--province", "X", "--scope", "10.213.0.0/16"])
    assert ran.returncode == 2 and "more than 128 MiB; not a register" in ran.stderr, ran.terminal
    assert "Traceback" not in ran.terminal and ran.max_rss_mib < 200, ran.max_rss_mib


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_200_mib_file_is_refused_unread(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"register{suffix}"
    with path.open("wb") as f:
        f.write(",".join(HEADER).encode())
        f.truncate(200 << 20)  # sparse: the test writes nothing
    code, _, err = attt_import(path)
    assert_one_line_error(code, err, "larger than 32 MiB; not a register")


def csv_register(tmp_path: Path, *rows: str, end: str = "\n", header: tuple[str, ...] = HEADER) -> Path:
    path = tmp_path / "register.csv"
    path.write_text(end.join((",".join(header), *rows)) + end, encoding="utf-8")
    return path


def test_a_csv_cell_beyond_the_field_limit_is_one_line(tmp_path: Path) -> None:
    code, _, err = attt_import(csv_register(tmp_path, 'Cổng,Sở A,3,"' + "a" * 200_000 + '"'))
    assert_one_line_error(code, err, "row 2: not readable as CSV")


@pytest.mark.parametrize("end", ["\r", "\r\n"])
def test_csv_rows_end_at_line_breaks_only_outside_quotes(end: str, tmp_path: Path) -> None:
    """A quoted cell may hold a line break (Alt+Enter in Excel), and U+2028 or a form feed
    inside a cell ends nothing."""
    path = csv_register(
        tmp_path, '"Cổng dịch vụ\ncông",Sở A,3,10.213.1.10', "Thư\u2028điện\x0ctử,Sở A,3,10.213.1.11", end=end
    )
    code, out, err = attt_import(path)
    assert (code, err) == (0, "")
    assert "address: 10.213.1.10" in out and "address: 10.213.1.11" in out


def test_a_row_naming_one_address_twice_is_refused(tmp_path: Path) -> None:
    """It used to be imported, written, then refused on reload (an inventory lists a host once),
    leaving behind the file that does not load."""
    path = csv_register(tmp_path, "Cổng,Sở A,3,10.213.1.10 10.213.1.10", "Web,Sở A,3,10.213.1.11")
    code, _, err = attt_import(path, "-o", str(tmp_path / "inventory.yaml"))
    assert code == 2 and "row 2: address '10.213.1.10' is written twice" in err, err
    assert "1 systems imported, 1 rows refused" in err


@pytest.mark.parametrize("case", ["no-such-directory", "over-the-inventory-limit"])
def test_nothing_is_written_unless_the_whole_inventory_is(case: str, tmp_path: Path) -> None:
    """An inventory over 2 MiB was written, then refused on reload and left behind."""
    output = tmp_path / "missing" / "inventory.yaml" if case == "no-such-directory" else tmp_path / "big.yaml"
    tags = " ".join(f"{n:04d}-" + "t" * 58 for n in range(1000))  # 64 KiB of YAML a row
    rows = [
        f"Hệ thống {n},Sở A,3,10.213.1.{n + 1},{tags}" for n in range(40 if output.name == "big.yaml" else 1)
    ]
    path = csv_register(tmp_path, *rows, header=(*HEADER, "Nhãn"))
    code, _, err = attt_import(path, "-o", str(output))
    assert_one_line_error(code, err, str(output))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["register.csv"]


NOT_WHAT_IT_SAYS = {
    # an .xls, and an encrypted (password) .xlsx: both are OLE compound files, not zip archives
    "ole-compound-file.xlsx": (
        bytes.fromhex("D0CF11E0A1B11AE1") + bytes(504),
        "not a readable .xlsx workbook",
    ),
    "csv-named.xlsx": (",".join(HEADER).encode() + b"\n", "not a readable .xlsx workbook"),
    "utf-16.csv": (",".join(HEADER).encode("utf-16"), "cannot read as UTF-8 text"),
}


@pytest.mark.parametrize("name", sorted(NOT_WHAT_IT_SAYS))
def test_a_file_that_is_not_what_its_suffix_says_is_one_line(name: str, tmp_path: Path) -> None:
    content, words = NOT_WHAT_IT_SAYS[name]
    (tmp_path / name).write_bytes(content)
    code, _, err = attt_import(tmp_path / name)
    assert_one_line_error(code, err, name, words)


def test_a_fifo_named_like_a_register_is_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "register.csv"
    os.mkfifo(fifo)
    ran = run_attt(
        ["inventory", "import", str(fifo), "--province", "X", "--scope", "10.213.0.0/16"], timeout=20
    )
    assert ran.returncode == 2 and ran.stderr.splitlines() == [f"attt: error: {fifo}: not a regular file"]


def test_a_register_with_excel_features_openpyxl_drops_reads_quietly(tmp_path: Path) -> None:
    """A drop-down list for the level (a data validation extension) is common in a register
    template; openpyxl's warning about it, with its own source path, is not the user's concern."""
    ext = (
        '<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}"'
        ' xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
        '<x14:dataValidations count="0"/></ext></extLst>'
    )
    part = sheet(system_rows(1), "A1:D2").replace(b"</worksheet>", ext.encode() + b"</worksheet>")
    path = workbook(tmp_path / "register.xlsx", {SHEET: part})
    ran = run_attt(["inventory", "import", str(path), "--province", "X", "--scope", "10.213.0.0/16"])
    assert (ran.returncode, ran.stderr) == (0, ""), ran.terminal
    assert "address: 10.213.1.2" in ran.stdout
