"""Which sshd settings a `Match` block sets: what `sshd -T` alone cannot show.

`sshd -T` prints the settings of a connection that matches no `Match` block (a `Match all`
block included, as sshd applies it); a `Match User`, `Address`, `Group`, ... block can set
PasswordAuthentication or PermitRootLogin otherwise for some users or addresses. sshd itself
names the files it reads (`sshd -ddd -T` logs each one, Include globs expanded, and the line of
each Include); their lines, read with `grep -H -n`, show what each Match block sets.

Pure parsing: the commands run in `_paramiko.authenticated_facts`.
"""

import re

MAX_FILES = 32
MAX_PLACES = 8
"""Places kept per keyword: enough to name them, bounded whatever the file holds."""
MAX_KEYWORDS = 64
MAX_PLACE = 200
MAX_DEPTH = 16
"""sshd's own limit on nested Include."""

_LOADED = re.compile(r"^debug2: load_server_config: filename (/\S+)$")
_INCLUDED = re.compile(r"^debug2: (/\S+) line (\d+): including (/\S+)$")
_KEYWORD = re.compile(r"^[a-z0-9]{1,64}$")
_ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
}
"""Old keyword names and the name `sshd -T` prints for the same setting."""


class MatchReadError(Exception):
    """What sshd read could not be told; the message is safe to store."""


def loaded_files(debug: str) -> tuple[tuple[str, ...], dict[tuple[str, int], list[str]]]:
    """The files `sshd -ddd -T` read, main file first, and the files each `(file, line)` Include
    brought in."""
    files: list[str] = []
    includes: dict[tuple[str, int], list[str]] = {}
    for line in debug.splitlines():
        if (loaded := _LOADED.match(line)) and loaded.group(1) not in files:
            files.append(loaded.group(1))
        elif included := _INCLUDED.match(line):
            includes.setdefault((included.group(1), int(included.group(2))), []).append(included.group(3))
    if not files:
        raise MatchReadError("sshd -ddd -T did not name the configuration files it read")
    if len(files) > MAX_FILES:
        raise MatchReadError(f"sshd reads more than {MAX_FILES} configuration files")
    return tuple(files), includes


def file_lines(listing: str, files: tuple[str, ...]) -> dict[str, list[tuple[int, str]]]:
    """`grep -H -n -e '' -- FILES` output (`path:number:text`) as each file's numbered lines."""
    lines: dict[str, list[tuple[int, str]]] = {path: [] for path in files}
    for row in listing.splitlines():
        path, _, rest = row.partition(":")
        number, _, text = rest.partition(":")
        if path in lines and number.isdigit():
            lines[path].append((int(number), text))
    return lines


def _keyword(text: str) -> tuple[str, str] | None:
    """A config line's keyword (lower case, as `sshd -T` names it) and arguments; None for a
    blank line or a comment. sshd separates the keyword by white space or one `=`."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    keyword, *rest = re.split(r"\s*=\s*|\s+", stripped, maxsplit=1)
    word = keyword.lower()
    return _ALIASES.get(word, word), " ".join(rest).strip()


def conditional_settings(
    files: tuple[str, ...],
    includes: dict[tuple[str, int], list[str]],
    lines: dict[str, list[tuple[int, str]]],
) -> dict[str, tuple[str, ...]]:
    """Each keyword set inside a Match block other than `Match all` (directly, or in a file an
    Include inside such a block brings in), with where: `file:line under Match criteria`.

    A Match block lasts until the next Match line or the end of its file (sshd restores the
    including file's state after an Include)."""
    found: dict[str, list[str]] = {}

    def walk(path: str, inherited: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise MatchReadError(f"Include nested deeper than {MAX_DEPTH} levels")
        if path not in lines:
            raise MatchReadError(f"sshd included {path[:80]!r}, which was not read")
        block = inherited
        for number, text in lines[path]:
            parsed = _keyword(text)
            if parsed is None:
                continue
            keyword, rest = parsed
            if keyword == "match":
                block = inherited if rest.lower() == "all" else f"Match {rest}"
                continue
            for included in includes.get((path, number), ()):
                walk(included, block, depth + 1)
            if block is None or keyword == "include" or not _KEYWORD.match(keyword):
                continue
            if keyword not in found and len(found) >= MAX_KEYWORDS:
                raise MatchReadError(f"Match blocks set more than {MAX_KEYWORDS} keywords")
            places = found.setdefault(keyword, [])
            if len(places) < MAX_PLACES:
                place = f"{path}:{number} under {block}"[:MAX_PLACE]
                places.append("".join(c if c.isprintable() else "?" for c in place))

    walk(files[0], None, 0)
    return {keyword: tuple(places) for keyword, places in found.items()}
