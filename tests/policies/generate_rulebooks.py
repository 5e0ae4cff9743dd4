"""The rule books in docs/policies/ are generated from the bundled policies; this module writes
them (`python -m tests.policies.generate_rulebooks`) and tells the tests what they should say.

Each bundled policy gets `<id>.md` (Vietnamese, what auditors read) and `<id>.en.md`.
"""

from pathlib import Path

from attt.reports.rulebook import policy_markdown
from attt.scanner.policy import bundled_policy_ids, load_policy
from attt.scanner.registry import Registry

RULEBOOK_DIR = Path(__file__).resolve().parents[2] / "docs" / "policies"
FILE_NAMES = {"vi": "{id}.md", "en": "{id}.en.md"}


def rulebooks(registry: Registry) -> dict[Path, str]:
    """Every rule book file and the text it should hold."""
    books: dict[Path, str] = {}
    for policy_id in bundled_policy_ids():
        policy = load_policy(policy_id, registry)
        for lang, pattern in FILE_NAMES.items():
            books[RULEBOOK_DIR / pattern.format(id=policy_id)] = policy_markdown(policy, lang)
    return books


def stale(registry: Registry) -> list[str]:
    """Rule book files that are missing, out of date, or left over from a removed policy."""
    books = rulebooks(registry)
    problems = [
        path.name
        for path, text in books.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    present = set(RULEBOOK_DIR.glob("*.md")) if RULEBOOK_DIR.is_dir() else set()
    problems += [f"{path.name} (no such bundled policy)" for path in sorted(present - set(books))]
    return problems


def write(registry: Registry) -> list[Path]:
    """Bring docs/policies/ in line with the bundled policies; the files that changed."""
    books = rulebooks(registry)
    RULEBOOK_DIR.mkdir(parents=True, exist_ok=True)
    changed = sorted(set(RULEBOOK_DIR.glob("*.md")) - set(books))
    for path in changed:
        path.unlink()
    for path, text in books.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main() -> None:
    changed = write(Registry.load())
    for path in changed:
        print(f"updated {path.relative_to(RULEBOOK_DIR.parents[1])}")
    if not changed:
        print("rule books are current")


if __name__ == "__main__":
    main()
