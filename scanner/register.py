"""`attt inventory import`: the register a province keeps as a spreadsheet, turned into an inventory.

The register (danh mục hệ thống thông tin) is an .xlsx or .csv with one row per system and
column headers in Vietnamese or English. Every row either becomes a system or is refused with
its row number and the reason. Nothing is guessed: an address that is not exactly an IP
address or a host name (a range, a CIDR, a URL, two names run together) refuses the row, and
so does a level that is not a single number from 1 to 5.
"""

import csv
import io
import re
import stat
import unicodedata
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from attt.scanner.errors import ConfigError
from attt.scanner.inventory import Scope, _scope_problem
from attt.scanner.models.target import Contact, Host, Inventory, LevelDecision, Owner, Service, System

MAX_ROWS = 10_000
"""Far above any province's register; a bigger sheet is not a register."""
MAX_COLUMNS = 256
"""Columns read from a sheet (a register has about fifteen); cells further right are not read."""
MAX_BYTES = 32 << 20
"""The largest register file: a province's 10,000 rows are a few MiB as CSV, less as .xlsx."""
MAX_UNPACKED_BYTES = 128 << 20
"""The most a workbook's parts may unpack to: a zip bomb stops here, before openpyxl reads it."""

# Header (folded: no diacritics, lower case, single spaces) -> field.
_HEADERS: Mapping[str, str] = {
    **dict.fromkeys(("ma he thong", "ma", "id", "system id"), "id"),
    **dict.fromkeys(("ten he thong", "ten", "system name", "name", "system"), "name"),
    **dict.fromkeys(
        ("co quan chu quan", "don vi chu quan", "chu quan", "owner", "owner agency", "agency"), "owner"
    ),
    **dict.fromkeys(("cap do", "cap do an toan", "level", "security level"), "level"),
    **dict.fromkeys(
        (
            "dia chi ip/ten mien",
            "dia chi ip",
            "ten mien",
            "dia chi",
            "ip/ten mien",
            "address",
            "addresses",
            "ip address/domain",
            "ip/domain",
            "host",
            "hosts",
        ),
        "address",
    ),
    **dict.fromkeys(("cong dich vu", "cong", "ports", "service ports", "port"), "ports"),
    **dict.fromkeys(("nguoi lien he", "contact", "contact name", "contact person"), "contact"),
    **dict.fromkeys(("email", "e-mail", "thu dien tu"), "email"),
    **dict.fromkeys(("dien thoai", "so dien thoai", "phone", "telephone"), "phone"),
    **dict.fromkeys(("so quyet dinh", "quyet dinh", "decision number", "decision"), "decision_number"),
    **dict.fromkeys(("ngay quyet dinh", "ngay", "decision date"), "decision_date"),
    **dict.fromkeys(("nhan", "tags"), "tags"),
}
_ROW_NUMBER_HEADERS = frozenset({"stt", "so thu tu", "no", "no.", "#"})
"""The running number registers start with: not data, and not worth a warning."""
_REQUIRED = ("name", "owner", "level", "address")
_SPLIT = re.compile(r"[\s,;]+")
_LEVEL = re.compile(r"^(?:cap do|cap|level)?\s*([1-5])$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Refused:
    row: int
    reason: str


@dataclass
class ImportResult:
    inventory: Inventory | None
    """The systems of every usable row (None when no row was usable)."""
    refused: list[Refused] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def fold(text: str) -> str:
    """Lower case, without Vietnamese diacritics (đ -> d), single spaces, no space around '/'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    bare = re.sub(r"\s+", " ", bare.lower()).strip(" :*")
    return re.sub(r"\s*/\s*", "/", bare)


def slug(text: str, limit: int = 63) -> str:
    """An ascii id `[a-z0-9-]` from a Vietnamese name."""
    return re.sub(r"[^a-z0-9]+", "-", fold(text)).strip("-")[:limit].strip("-") or "x"


def read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cell texts) of the first sheet or the CSV, header row included."""
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise ConfigError(
            f"{path}: a register must be .xlsx or .csv, not {suffix or 'a file without suffix'}"
        )
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the register: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block for ever, /dev/zero never end
        raise ConfigError(f"{path}: not a regular file")
    if info.st_size > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a register")
    yield from _xlsx_rows(path) if suffix == ".xlsx" else _csv_rows(path)


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook  # only this command needs it
    from openpyxl.utils.exceptions import InvalidFileException

    _refuse_bomb(path)
    # openpyxl warns of the Excel features it drops (drop-down lists, conditional formats), naming
    # its own source file: only cell values matter here.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl\.")
    # What openpyxl raises on a damaged or hostile workbook, while opening it and while reading
    # its rows (an XML ParseError is a SyntaxError; a cell's bad number a ValueError).
    unreadable = (OSError, zipfile.BadZipFile, InvalidFileException, SyntaxError, LookupError, ValueError,
                  TypeError, AttributeError, ArithmeticError, EOFError, zlib.error)  # fmt: skip
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except unreadable as exc:
        raise ConfigError(f"{path}: not a readable .xlsx workbook: {exc}") from None
    try:
        if not book.worksheets:
            raise ConfigError(f"{path}: the workbook has no worksheet")
        sheet = book.worksheets[0]
        # The sheet's own claim of its size is not trusted: a stale one drops rows silently
        # (openpyxl stops at its last row), a huge one pads every row to 16,384 cells.
        sheet.reset_dimensions()
        rows = sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True)
        for number, row in enumerate(rows, start=1):
            if number > MAX_ROWS + 1:
                raise ConfigError(f"{path}: more than {MAX_ROWS} rows; not a register")
            yield number, [_cell(v) for v in row]
    except unreadable as exc:
        raise ConfigError(f"{path}: not a readable .xlsx workbook: {exc}") from None
    finally:
        book.close()


def _refuse_bomb(path: Path) -> None:
    """ConfigError when the workbook's parts unpack to more than MAX_UNPACKED_BYTES. zipfile
    never unpacks a part beyond the size its directory declares, so the sum of those bounds
    what openpyxl reads (its shared strings are held in memory whole)."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a readable .xlsx workbook: {exc}") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise ConfigError(
            f"{path}: its parts unpack to {unpacked >> 20} MiB, more than {MAX_UNPACKED_BYTES >> 20} MiB;"
            " not a register"
        )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read as UTF-8 text: {exc}") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    # The csv module splits the lines itself: a quoted cell may hold a line break, and only
    # \r, \n and \r\n end a row (str.splitlines also splits at U+2028 and form feeds).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, row in enumerate(reader, start=1):
            if number > MAX_ROWS + 1:
                raise ConfigError(f"{path}: more than {MAX_ROWS} rows; not a register")
            yield number, [c.strip() for c in row]
    except csv.Error as exc:
        raise ConfigError(f"{path}: row {reader.line_num}: not readable as CSV: {exc}") from None


def import_register(path: Path, province: str, scope: Sequence[str]) -> ImportResult:
    """Read a register and build the inventory of its usable rows; see the module docstring."""
    rows = read_rows(path)
    header = next(rows, None)
    if header is None:
        raise ConfigError(f"{path}: the register is empty")
    columns, warnings = _columns(path, header[1])
    result = ImportResult(inventory=None, warnings=warnings)
    scope_entries = _scope(scope)
    checked_scope = Scope.of(scope_entries)
    systems: list[System] = []
    contacts: dict[str, tuple[int, Contact]] = {}
    ids: set[str] = set()
    for number, cells in rows:
        record = {name: cells[i] if i < len(cells) else "" for name, i in columns.items()}
        if not any(record.values()):
            continue
        try:
            system, contact = _system(record, checked_scope, ids)
        except _RowError as exc:
            result.refused.append(Refused(number, str(exc)))
            continue
        ids.add(system.id)
        systems.append(system)
        if contact is not None:
            kept = contacts.setdefault(system.owner, (number, contact))
            if kept[1] != contact:
                first = kept[0]
                result.warnings.append(
                    f"row {number}: contact of {system.owner!r} differs from row {first}, whose is kept"
                )
    if systems:
        owners = tuple(Owner(name=name, contact=c) for name, (_, c) in contacts.items())
        try:
            result.inventory = Inventory(
                province=province, scope=scope_entries, owners=owners, systems=systems
            )
        except ValidationError as exc:
            raise ConfigError(
                f"{path}: the imported inventory is invalid: {exc.errors()[0]['msg']}"
            ) from None
    return result


def _scope(scope: Sequence[str]) -> tuple[str, ...]:
    from attt.scanner.models.target import _check_scope_entry

    try:
        return tuple(_check_scope_entry(s) for s in scope)
    except ValueError as exc:
        raise ConfigError(f"--scope: {exc}") from None


def _columns(path: Path, header: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    warnings: list[str] = []
    for index, text in enumerate(header):
        if not text or fold(text) in _ROW_NUMBER_HEADERS:
            continue
        name = _HEADERS.get(fold(text))
        if name is None:
            warnings.append(f"column {text!r} is not used (unknown header)")
        elif name in columns:
            raise ConfigError(
                f"{path}: row 1: two columns mean {name!r}: {header[columns[name]]!r} and {text!r}"
            )
        else:
            columns[name] = index
    missing = [n for n in _REQUIRED if n not in columns]
    if missing:
        raise ConfigError(
            f"{path}: row 1: no column for {', '.join(missing)} (headers such as: tên hệ thống,"
            " cơ quan chủ quản, cấp độ, địa chỉ IP / tên miền)"
        )
    return columns, warnings


class _RowError(Exception):
    """Why one row cannot become a system."""


def _system(record: Mapping[str, str], scope: Scope, taken: set[str]) -> tuple[System, Contact | None]:
    name, owner = record["name"], record["owner"]
    if not name:
        raise _RowError("no system name (tên hệ thống)")
    if not owner:
        raise _RowError("no owner agency (cơ quan chủ quản)")
    level = _LEVEL.match(fold(record["level"]))
    if level is None:
        raise _RowError(f"level (cấp độ) must be one number from 1 to 5, not {record['level']!r}")
    system_id = record.get("id") or slug(name)
    if system_id in taken:
        raise _RowError(f"system id {system_id!r} is already used by an earlier row")
    fields: dict[str, Any] = {
        "id": system_id,
        "name": name,
        "owner": owner,
        "level": int(level.group(1)),
        "hosts": _hosts(record["address"], _ports(record.get("ports", "")), scope),
        "tags": _tags(record.get("tags", "")),
        "level_decision": _decision(record.get("decision_number", ""), record.get("decision_date", "")),
    }
    try:
        system = System.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _RowError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return system, _contact(record)


def _hosts(text: str, services: tuple[Service, ...], scope: Scope) -> list[Host]:
    addresses = [a for a in _SPLIT.split(text) if a]
    if not addresses:
        raise _RowError("no address (địa chỉ IP / tên miền)")
    hosts: list[Host] = []
    seen: set[str] = set()
    for address in addresses:
        if "://" in address or "/" in address:
            raise _RowError(f"address {address!r} is a URL or a network, not one host; write the host alone")
        try:
            host = Host(address=address, services=services)
        except ValidationError:
            raise _RowError(f"address {address!r} is not an IP address or a host name") from None
        problem = _scope_problem(host.address, scope, None)
        if problem is not None:
            raise _RowError(f"address {address!r} is out of scope: {problem}")
        if host.address in seen:
            # Normalised: `::1` and `0::1` are one host, which an inventory lists once.
            raise _RowError(f"address {address!r} is written twice (địa chỉ IP / tên miền trùng)")
        seen.add(host.address)
        hosts.append(host)
    return hosts


def _ports(text: str) -> tuple[Service, ...]:
    ports: list[int] = []
    for item in (p for p in _SPLIT.split(text) if p):
        bare = item.lower().removesuffix("/tcp")
        if not bare.isdigit() or not 1 <= int(bare) <= 65535:
            raise _RowError(f"port (cổng dịch vụ) {item!r} is not a TCP port number 1-65535")
        ports.append(int(bare))
    return tuple(Service(port=p) for p in dict.fromkeys(ports))


def _tags(text: str) -> tuple[str, ...]:
    tags = tuple(t.lower() for t in _SPLIT.split(text) if t)
    bad = [t for t in tags if not _TAG.match(t)]
    if bad:
        raise _RowError(f"tag {bad[0]!r}: tags are lower-case letters, digits and '-'")
    return tags


def _decision(number: str, day: str) -> LevelDecision | None:
    if not number and not day:
        return None
    if not number or not day:
        raise _RowError("the level decision needs both its number (số quyết định) and date (ngày)")
    return LevelDecision(number=number, date=_date(day))


def _date(text: str) -> date:
    """ISO (2025-09-01) or the Vietnamese day-first form (01/09/2025, 1-9-2025)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    match = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", text)
    try:
        if match:
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
    except ValueError:
        pass
    raise _RowError(f"decision date {text!r} is not a date (dd/mm/yyyy or yyyy-mm-dd)")


def _contact(record: Mapping[str, str]) -> Contact | None:
    name, email, phone = record.get("contact", ""), record.get("email", ""), record.get("phone", "")
    if not (name or email or phone):
        return None
    try:
        return Contact(name=name or email or phone, email=email or None, phone=phone or None)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _RowError(
            f"contact {first['loc'][0]} {record.get(str(first['loc'][0]), '')!r}: {first['msg']}"
        ) from None


def inventory_yaml(inventory: Inventory) -> str:
    """The inventory as YAML in the order a person reads it, without empty optional fields."""
    import yaml

    data = inventory.model_dump(mode="json", exclude_defaults=True)
    body: dict[str, Any] = {k: data[k] for k in ("province", "scope", "owners", "systems") if k in data}
    return yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=110)


def describe(refused: Iterable[Refused]) -> list[str]:
    return [f"row {r.row}: {r.reason}" for r in refused]
