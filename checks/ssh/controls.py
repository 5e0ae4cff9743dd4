"""The ssh controls: pure judgements over `SshData` and a rule's params."""

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Literal, Self

from pydantic import field_validator, model_validator

from attt.checks.ssh.cves import Exposure, Kind, KnownCve, cve_table, exposure
from attt.checks.ssh.knowledge import parse_openssh, profiles
from attt.checks.ssh.models import AUTH_STEP, CONFIG_STEP, MATCH_STEP, SshData
from attt.checks.ssh.packages import Build, banner_build, package_build
from attt.scanner.models.base import Text
from attt.scanner.models.target import Target
from attt.scanner.plugin import Controls, NoParams, Params, Verdict

CONTROLS = Controls("ssh")

ListName = Literal["kex", "host_key_algorithms", "ciphers", "macs"]
_LISTS: tuple[ListName, ...] = ("kex", "host_key_algorithms", "ciphers", "macs")
_RSA = frozenset({"ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"})
_CERT_SUFFIX = "-cert-v01@openssh.com"
_CBC_SUFFIXES = ("-cbc", "-cbc@openssh.org", "-cbc@ssh.com")


def _offered(data: SshData, which: ListName) -> tuple[str, ...]:
    if which == "kex":
        return data.kex_algorithms()
    if which == "ciphers":
        return data.all_ciphers()
    if which == "macs":
        return data.all_macs()
    return data.host_key_algorithms


def _ssh1_only(data: SshData) -> Verdict | None:
    if data.speaks_ssh2:
        return None
    return Verdict.cannot_judge(
        f"the server speaks only SSH-{data.protocol}, so it sent no algorithm lists",
        observed=data.banner,
        vi=f"máy chủ chỉ hỗ trợ SSH-{data.protocol} nên không gửi danh sách thuật toán",
    )


def _joined(parts: list[Text]) -> Text:
    return Text(vi="; ".join(p.vi for p in parts), en="; ".join(p.en for p in parts))


def _listed(found: dict[ListName, list[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(names)}" for name, names in found.items())


def _matching(names: tuple[str, ...], patterns: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(fnmatchcase(name, p) for p in patterns)]


def _within_match(verdict: Verdict, data: SshData, keywords: Iterable[str]) -> Verdict:
    """`verdict`, unless a Match block sets one of `keywords`: `sshd -T` and the `none` query show
    what a connection no Match block catches gets, not what the users or addresses a Match block
    names get. A pass then rests on part of the configuration and is an error naming the blocks;
    a failure stands (some connections do get the failing value) and names them too."""
    if data.config is not None and data.config_match is None and verdict.status in ("pass", "error"):
        # sshd -T was read and its Match blocks not (the step failed, or a run stored before
        # attt read them): a pass would rest on part of the configuration.
        why = f"probe step {MATCH_STEP}: {data.step_errors.get(MATCH_STEP) or 'not part of this observation'}"
        before = Text(vi="", en="")
        if verdict.status == "error":
            before = Text(vi=f"{verdict.text.vi}; ", en=f"{verdict.message}; ")
        return Verdict.cannot_judge(
            f"{before.en}the Match blocks of the sshd configuration could not be read ({why}), so"
            " whether one changes the settings judged for some users or addresses cannot be told",
            verdict.observed,
            verdict.expected,
            vi=f"{before.vi}không đọc được các khối Match của cấu hình sshd ({why}) nên không xác định được"
            " có khối nào thay đổi các thiết lập được đánh giá cho một số người dùng hoặc địa chỉ hay không",
        )
    found = {
        key: data.config_match[key] for key in keywords if data.config_match and key in data.config_match
    }
    if not found or verdict.status not in ("pass", "fail"):
        return verdict
    where = "; ".join(f"{key} at {', '.join(places)}" for key, places in found.items())
    names = ", ".join(found)
    if verdict.status == "fail":
        return Verdict.failed(
            f"{verdict.message} (Match blocks also set {where})",
            verdict.observed,
            verdict.expected,
            vi=f"{verdict.text.vi} (khối Match cũng đặt {where})",
        )
    return Verdict.cannot_judge(
        f"a Match block sets {names} ({where}): the value judged is what connections outside every"
        " Match block get, so what the users or addresses it names get was not judged",
        {"match_blocks": found, "outside_match": verdict.observed},
        verdict.expected,
        vi=f"khối Match đặt {names} ({where}): giá trị được đánh giá chỉ áp dụng cho kết nối không khớp"
        " khối Match nào, nên giá trị áp dụng cho người dùng hoặc địa chỉ mà khối đó nêu chưa được đánh giá",
    )


# --- ssh.protocol_2_only ---------------------------------------------------------------


@CONTROLS.control("ssh.protocol_2_only")
def _protocol_2_only(data: SshData, params: NoParams, target: Target) -> Verdict:
    """Only SSH protocol 2 is spoken.

    SSH-1 has design flaws no configuration fixes (CRC-32 compensation attack, weak integrity
    protection) and OpenSSH removed it in 7.6; a server announcing 1.99 still lets a client pick it.
    """
    if data.protocol == "2.0":
        return Verdict.passed(
            "the server speaks SSH-2 only",
            observed=data.banner,
            expected="SSH-2.0",
            vi="máy chủ chỉ hỗ trợ SSH-2",
        )
    what = (
        Text(vi="vẫn chấp nhận cả SSH-1", en="also accepts SSH-1")
        if data.protocol == "1.99"
        else Text(vi="chỉ hỗ trợ SSH-1", en="speaks only SSH-1")
    )
    return Verdict.failed(
        f"the server {what.en} (protocol {data.protocol})",
        data.banner,
        "SSH-2.0",
        vi=f"máy chủ {what.vi} (giao thức {data.protocol})",
    )


# --- ssh.algorithms_forbidden ----------------------------------------------------------


class ForbiddenParams(Params):
    """Shell-style patterns (`*-cbc`, `hmac-sha1*`) of algorithms that must not be offered."""

    kex: tuple[str, ...] = ()
    """Key exchange algorithm patterns."""
    host_key_algorithms: tuple[str, ...] = ()
    """Host key algorithm patterns."""
    ciphers: tuple[str, ...] = ()
    """Cipher patterns (either direction)."""
    macs: tuple[str, ...] = ()
    """MAC patterns (either direction)."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not any(getattr(self, name) for name in _LISTS):
            raise ValueError("give at least one of kex, host_key_algorithms, ciphers, macs")
        return self


@CONTROLS.control("ssh.algorithms_forbidden", ForbiddenParams)
def _algorithms_forbidden(data: SshData, params: ForbiddenParams, target: Target) -> Verdict:
    """No forbidden KEX, host-key, cipher or MAC algorithm is offered.

    An algorithm stays negotiable as long as it is offered, whatever the server prefers: a client
    that prefers it, or an attacker who tampers with negotiation, gets it (SHA-1 key exchange and
    MACs, CBC ciphers, 1024-bit DH groups within reach of Logjam-style precomputation). Patterns
    are shell-style (`*-cbc`, `hmac-sha1*`).
    """
    if (unknown := _ssh1_only(data)) is not None:
        return unknown
    found = {
        name: hits for name in _LISTS if (hits := _matching(_offered(data, name), getattr(params, name)))
    }
    expected = {name: list(getattr(params, name)) for name in _LISTS if getattr(params, name)}
    if found:
        listed = _listed(found)
        return Verdict.failed(
            f"forbidden algorithms offered ({listed})",
            found,
            {"none of": expected},
            vi=f"máy chủ hỗ trợ thuật toán bị cấm ({listed})",
        )
    return Verdict.passed(
        "no forbidden algorithm is offered",
        expected={"none of": expected},
        vi="máy chủ không hỗ trợ thuật toán bị cấm nào",
    )


# --- ssh.algorithms_allowed_only -------------------------------------------------------


class AllowedOnlyParams(Params):
    """An allow-list: a named profile (checks/ssh/data/ssh_profiles.json), lists, or a profile
    with some lists replaced."""

    profile: str | None = None
    """A profile name from checks/ssh/data/ssh_profiles.json."""
    kex: tuple[str, ...] | None = None
    """Allowed key exchange patterns; replaces the profile's list."""
    host_key_algorithms: tuple[str, ...] | None = None
    """Allowed host key algorithm patterns; replaces the profile's list."""
    ciphers: tuple[str, ...] | None = None
    """Allowed cipher patterns; replaces the profile's list."""
    macs: tuple[str, ...] | None = None
    """Allowed MAC patterns; replaces the profile's list."""

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in profiles():
            raise ValueError(f"unknown profile {value!r}; known: {', '.join(sorted(profiles()))}")
        return value

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.profile is None and all(getattr(self, name) is None for name in _LISTS):
            raise ValueError("give a profile or at least one list")
        return self

    def allowed(self) -> dict[ListName, tuple[str, ...]]:
        base = profiles()[self.profile].model_dump() if self.profile else {}
        lists = {name: getattr(self, name) or base.get(name) for name in _LISTS}
        return {name: tuple(value) for name, value in lists.items() if value is not None}


@CONTROLS.control("ssh.algorithms_allowed_only", AllowedOnlyParams)
def _algorithms_allowed_only(data: SshData, params: AllowedOnlyParams, target: Target) -> Verdict:
    """Every offered algorithm is in an allow-list profile.

    An allow-list also catches what nobody thought to forbid: vendor-specific, experimental or
    newly added algorithms. Named profiles are in checks/ssh/data/ssh_profiles.json.
    """
    if (unknown := _ssh1_only(data)) is not None:
        return unknown
    allowed = params.allowed()
    extra = {
        name: outside
        for name, patterns in allowed.items()
        if (outside := [a for a in _offered(data, name) if not _matching((a,), patterns)])
    }
    label = (
        Text(vi=f"hồ sơ {params.profile}", en=f"profile {params.profile}")
        if params.profile
        else Text(vi="danh sách cho phép", en="the allow-list")
    )
    if extra:
        listed = _listed(extra)
        return Verdict.failed(
            f"algorithms outside {label.en} are offered ({listed})",
            extra,
            allowed,
            vi=f"máy chủ hỗ trợ thuật toán nằm ngoài {label.vi} ({listed})",
        )
    return Verdict.passed(
        f"every offered algorithm is in {label.en}",
        expected=allowed,
        vi=f"mọi thuật toán máy chủ hỗ trợ đều thuộc {label.vi}",
    )


# --- ssh.host_key_min_bits -------------------------------------------------------------


class HostKeyParams(Params):
    rsa: int = 3072
    """Smallest RSA host key, in bits."""
    ecdsa: int = 256
    """Smallest ECDSA host key, in bits."""
    allow_dsa: bool = False
    """Whether a DSA (ssh-dss) host key may be offered."""


def _key_family(algorithm: str) -> str:
    plain = algorithm.removesuffix(_CERT_SUFFIX)
    return "ssh-rsa" if plain in _RSA else plain


@CONTROLS.control("ssh.host_key_min_bits", HostKeyParams)
def _host_key_min_bits(data: SshData, params: HostKeyParams, target: Target) -> Verdict:
    """Host keys are large enough.

    The host key proves the server's identity to every client; RSA under 3072 bits (NIST SP 800-57
    for use beyond 2030), small ECDSA keys, or DSA (fixed at 1024 bits, removed from OpenSSH) can be
    broken sooner, letting an impostor pass as the server. Key types the server offers but whose
    keys could not be fetched are an error, never a pass.
    """
    if (unknown := _ssh1_only(data)) is not None:
        return unknown
    problems: list[Text] = []
    if not params.allow_dsa and "ssh-dss" in {_key_family(a) for a in data.host_key_algorithms}:
        problems.append(
            Text(
                vi="máy chủ có cung cấp khóa máy chủ DSA (ssh-dss)", en="a DSA host key (ssh-dss) is offered"
            )
        )
    for key in data.host_keys:
        minimum = params.rsa if key.type == "ssh-rsa" else params.ecdsa if "ecdsa" in key.type else 0
        if key.bits < minimum:
            problems.append(
                Text(
                    vi=f"khóa máy chủ {key.type} chỉ dài {key.bits} bit (< {minimum})",
                    en=f"{key.type} host key has {key.bits} bits (< {minimum})",
                )
            )
    observed = [f"{k.type} {k.bits}" for k in data.host_keys]
    expected = {"rsa": params.rsa, "ecdsa": params.ecdsa, "dsa": params.allow_dsa}
    if problems:
        both = _joined(problems)
        return Verdict.failed(both.en, observed, expected, vi=both.vi)
    seen = {k.type for k in data.host_keys}
    unseen = sorted({_key_family(a) for a in data.host_key_algorithms} - seen - {"ssh-dss"})
    if unseen or not data.host_keys:
        types = ", ".join(unseen)
        return Verdict.cannot_judge(
            f"host keys of type {types or 'any'} could not be fetched",
            observed,
            expected,
            vi=f"không lấy được khóa máy chủ loại {types}" if types else "không lấy được khóa máy chủ nào",
        )
    return Verdict.passed(
        "every host key is large enough", observed, expected, vi="mọi khóa máy chủ đều đủ độ dài"
    )


# --- ssh.password_auth_disabled --------------------------------------------------------


class PasswordParams(Params):
    keyboard_interactive_counts: bool = False
    """keyboard-interactive counts as password authentication outright. By default it is judged:
    not a password where `sshd -T` shows UsePAM no, an error where that was not seen."""


_PASSWORD_KEYWORDS = ("passwordauthentication", "kbdinteractiveauthentication", "authenticationmethods")
"""The settings that decide which methods a user is offered, and that a Match block may change."""
_KI = "keyboard-interactive"


@CONTROLS.control("ssh.password_auth_disabled", PasswordParams, needs=(AUTH_STEP, MATCH_STEP), partial=True)
def _password_auth_disabled(data: SshData, params: PasswordParams, target: Target) -> Verdict:
    """Password authentication is not offered.

    Passwords can be guessed, sprayed or phished from anywhere the port is reachable; keys cannot.
    A server that lets an unknown user in with no authentication at all (`none`) fails.
    keyboard-interactive is how OpenSSH asks PAM, and PAM usually asks for the password
    (pam_unix), sometimes only for a one-time code: it is not a password only where `sshd -T`
    shows UsePAM no (no PAM stack behind it), and an error where that was not seen, since neither
    a pass nor a fail would rest on a fact. `keyboard_interactive_counts` makes it a password
    outright. With a credential, a Match block that changes the authentication settings for some
    users or addresses makes a pass an error: the query saw what an unknown user is offered.
    """
    if (unknown := _ssh1_only(data)) is not None:
        return unknown
    methods = data.auth_methods
    if methods is None:
        why = f"probe step {AUTH_STEP}: {data.step_errors.get(AUTH_STEP) or 'not completed'}"
        return Verdict.cannot_judge(
            f"the authentication methods could not be queried ({why})",
            expected="no password",
            vi=f"không truy vấn được các phương thức xác thực ({why})",
        )
    if "none" in methods:
        return Verdict.failed(
            "the server lets an unknown user in without authentication",
            methods,
            vi="máy chủ cho một người dùng không xác định đăng nhập mà không cần xác thực",
        )
    bad = ["password"] + ([_KI] if params.keyboard_interactive_counts else [])
    offered = [m for m in methods if m in bad]
    if offered:
        names = ", ".join(offered)
        verdict = Verdict.failed(
            f"password logins are offered ({names})",
            methods,
            "publickey",
            vi=f"máy chủ cho phép đăng nhập bằng mật khẩu ({names})",
        )
    elif _KI not in methods:
        verdict = Verdict.passed(
            "password authentication is not offered to an unknown user",
            methods,
            "publickey",
            vi="máy chủ không cho người dùng không xác định đăng nhập bằng mật khẩu",
        )
    elif data.config is not None and (data.config.get("usepam") or "").strip().lower() == "no":
        verdict = Verdict.passed(
            "password authentication is not offered to an unknown user; keyboard-interactive is,"
            " but sshd -T shows UsePAM no, so no PAM stack can ask for a password through it",
            {"auth_methods": methods, "usepam": "no"},
            "publickey",
            vi="máy chủ không cho người dùng không xác định đăng nhập bằng mật khẩu; có cung cấp"
            " keyboard-interactive nhưng sshd -T cho thấy UsePAM no nên không có PAM nào hỏi mật khẩu qua đó",
        )
    else:
        pam = data.config.get("usepam") if data.config is not None else None
        seen = Text(
            vi=f"sshd -T cho thấy UsePAM {pam}, và attt không đọc cấu hình PAM"
            if pam
            else "chưa đọc được sshd -T (cần tài khoản kiểm tra) để biết UsePAM",
            en=f"sshd -T shows UsePAM {pam}, and attt does not read the PAM stack"
            if pam
            else "sshd -T (which needs a credential) was not read to see UsePAM",
        )
        verdict = Verdict.cannot_judge(
            "keyboard-interactive is offered, and whether it asks for a password (PAM, usually"
            f" pam_unix) or only for a one-time code cannot be told: {seen.en}; set"
            " keyboard_interactive_counts to count it as a password",
            {"auth_methods": methods, "usepam": pam},
            "publickey",
            vi="máy chủ có cung cấp keyboard-interactive, và không xác định được nó hỏi mật khẩu (qua PAM,"
            f" thường là pam_unix) hay chỉ hỏi mã dùng một lần: {seen.vi}; đặt keyboard_interactive_counts"
            " để tính nó là mật khẩu",
        )
    return _within_match(verdict, data, _PASSWORD_KEYWORDS)


# --- ssh.terrapin_safe -----------------------------------------------------------------


@CONTROLS.control("ssh.terrapin_safe")
def _terrapin_safe(data: SshData, params: NoParams, target: Target) -> Verdict:
    """Not exposed to Terrapin (CVE-2023-48795).

    Terrapin lets an attacker in the path silently drop messages at the start of the encrypted
    channel (e.g. the extension negotiation) when chacha20-poly1305, or CBC with an EtM MAC, is
    used; the strict key exchange extension (OpenSSH 9.6 and later) closes it.
    """
    if (unknown := _ssh1_only(data)) is not None:
        return unknown
    ciphers, macs = data.all_ciphers(), data.all_macs()
    # The same tests as ssh-audit's: any ChaCha20-Poly1305 variant, and CBC under every name.
    chacha = [c for c in ciphers if c.startswith("chacha20-poly1305")]
    cbc = [c for c in ciphers if c.endswith(_CBC_SUFFIXES) or c == "rijndael-cbc@lysator.liu.se"]
    etm = [m for m in macs if m.endswith("-etm@openssh.com")]
    exposed = chacha + (cbc + etm if cbc and etm else [])
    observed = {"strict_kex": data.strict_kex, "affected_algorithms": exposed}
    if data.strict_kex:
        return Verdict.passed(
            "strict key exchange is offered (Terrapin countermeasure)",
            observed,
            vi="máy chủ hỗ trợ trao đổi khóa nghiêm ngặt (strict KEX, biện pháp chống Terrapin)",
        )
    if exposed:
        names = ", ".join(exposed)
        return Verdict.failed(
            f"no strict key exchange while offering {names} (CVE-2023-48795, Terrapin)",
            observed,
            "kex-strict-s-v00@openssh.com, or neither chacha20-poly1305 nor CBC with EtM MACs",
            vi=f"máy chủ không hỗ trợ trao đổi khóa nghiêm ngặt (strict KEX) trong khi vẫn cung cấp"
            f" {names} (CVE-2023-48795, Terrapin)",
        )
    return Verdict.passed(
        "no cipher/MAC combination that Terrapin affects is offered",
        observed,
        vi="máy chủ không cung cấp tổ hợp thuật toán mã hóa/MAC nào bị Terrapin ảnh hưởng",
    )


# --- ssh.software_not_vulnerable -------------------------------------------------------


class VulnerableParams(Params):
    kinds: tuple[Kind, ...] = ("pre-auth-remote", "post-auth")
    """Which CVEs of checks/ssh/data/ssh_cves.json the rule judges, by kind; client-side ones
    describe the ssh client, which a server scan does not see."""
    cves: tuple[str, ...] | None = None
    """Restrict further to these CVE ids; None means every CVE of the kinds."""

    @field_validator("cves")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = set(value or ()) - {c.id for c in cve_table().cves}
        if unknown:
            raise ValueError(f"unknown CVE ids {sorted(unknown)}; the table is checks/ssh/data/ssh_cves.json")
        return value


def _builds(data: SshData) -> list[tuple[Build | None, bool]]:
    """The distribution builds to judge, each with whether it is the installed package (exact)
    rather than what the banner shows: the package when it was read, else the banner's build.

    A Debian or Ubuntu banner names the build of the running sshd; when the installed package is
    another one (updated, sshd not restarted), both are judged and the worse outcome stands.
    """
    running = banner_build(data.software)
    package = data.package
    if package is not None:
        build = package_build(package.os_id, package.os_version, package.manager, package.version)
        if build is not None:
            if running is None or running.package_version == build.package_version:
                return [(build, True)]
            return [(build, True), (running, False)]
    return [(running, False)]


_WORSE = {"clear": 0, "undecided": 1, "affected": 2}


def _exposure(cve: KnownCve, data: SshData) -> Exposure:
    judged = [exposure(cve, data.software, build, from_package) for build, from_package in _builds(data)]
    return max(judged, key=lambda e: _WORSE[e.outcome])


@CONTROLS.control("ssh.software_not_vulnerable", VulnerableParams)
def _software_not_vulnerable(data: SshData, params: VulnerableParams, target: Target) -> Verdict:
    """The OpenSSH build carries a fix for every known CVE of the given kinds.

    Distributions backport fixes without changing the upstream version, so the upstream range
    alone fails patched servers. The distribution revision decides: Debian and Ubuntu show it in
    the banner; with a credential the probe reads the installed package and decides exactly. A
    banner that hides it (the Red Hat family's bare `OpenSSH_8.7`) cannot pass: the finding says
    it cannot be told. The table is checks/ssh/data/ssh_cves.json; other SSH servers have none,
    so the rule is not applicable to them.
    """
    if not data.software.strip() and data.package is None:
        # `SSH-2.0-` alone: the server did not say what it is, so "not OpenSSH" is not known either.
        return Verdict.cannot_judge(
            f"the identification string {data.banner!r} names no software",
            observed=data.banner,
            vi=f"chuỗi định danh {data.banner!r} không cho biết phần mềm máy chủ",
        )
    if parse_openssh(data.software) is None and data.package is None:
        shown = repr(data.software[:60])
        if "openssh" in data.software.lower():
            # `OpenSSH_for_Windows_7.7`, a bare `OpenSSH`: OpenSSH whose version the table cannot place.
            return Verdict.cannot_judge(
                f"OpenSSH in a form whose version attt cannot read ({shown}), so the CVE table cannot"
                " be applied",
                observed=data.software,
                vi=f"máy chủ là OpenSSH nhưng attt không đọc được phiên bản ({shown}) nên không đối chiếu"
                " được với bảng CVE",
            )
        return Verdict.not_applicable(
            f"not OpenSSH ({shown}): no version table",
            vi=f"không phải OpenSSH ({shown}): không có bảng phiên bản để đối chiếu",
        )
    builds = _builds(data)
    build, from_package = builds[0]
    wanted = [
        c for c in cve_table().cves if c.kind in params.kinds and (params.cves is None or c.id in params.cves)
    ]
    found = [_exposure(c, data) for c in wanted]
    source = (
        Text(vi=f"gói đã cài {build.package_version}", en=f"installed package {build.package_version}")
        if from_package and build
        else Text(vi=f"banner {data.software}", en=f"banner {data.software}")
    )
    if len(builds) > 1:
        source = Text(
            vi=f"{source.vi} và banner {data.software} của sshd đang chạy",
            en=f"{source.en} and banner {data.software} of the running sshd",
        )
    observed = {
        "software": data.software,
        "package": build.package_version if build else None,
        "from_installed_package": from_package,
        "affected": [e.cve.id for e in found if e.outcome == "affected"],
        "undecided": [e.cve.id for e in found if e.outcome == "undecided"],
    }
    affected = [e for e in found if e.outcome == "affected"]
    if affected:
        listed = _exposures(affected)
        return Verdict.failed(
            f"vulnerable ({source.en}): {listed.en}",
            observed,
            "a build that carries every fix",
            vi=f"có lỗ hổng ({source.vi}): {listed.vi}",
        )
    undecided = [e for e in found if e.outcome == "undecided"]
    if undecided:
        listed = _exposures(undecided)
        hint = Text(
            vi="; cần tài khoản kiểm tra (--credentials) để đọc phiên bản gói đã cài",
            en="; a credential (--credentials) lets the probe read the installed package",
        )
        if from_package:
            hint = Text(vi="", en="")
        elif data.package_error:
            hint = Text(
                vi=f"; không đọc được gói đã cài: {data.package_error}",
                en=f"; the installed package could not be read: {data.package_error}",
            )
        return Verdict.cannot_judge(
            f"cannot be told from the {source.en}: {listed.en}{hint.en}",
            observed,
            "a build that carries every fix",
            vi=f"không xác định được từ {source.vi}: {listed.vi}{hint.vi}",
        )
    fixed = [e for e in found if e.fix is not None]
    note = _exposures(fixed) if fixed else Text(vi="", en="")
    return Verdict.passed(
        f"no known {'/'.join(params.kinds)} CVE affects the {source.en}" + (f" ({note.en})" if fixed else ""),
        observed,
        vi=f"không có CVE đã biết nào ảnh hưởng tới {source.vi}" + (f" ({note.vi})" if fixed else ""),
    )


_KIND_VI = {
    "pre-auth-remote": "từ xa, trước xác thực",
    "post-auth": "sau xác thực",
    "client-side": "phía máy khách",
}
_SEVERITY_VI = {
    "info": "thông tin",
    "low": "thấp",
    "medium": "trung bình",
    "high": "cao",
    "critical": "nghiêm trọng",
}


def _exposures(found: list[Exposure]) -> Text:
    """Each CVE with its kind and its own severity, and why it stands as it does."""
    return Text(
        vi="; ".join(
            f"{e.cve.label} [{_KIND_VI[e.cve.kind]}, {_SEVERITY_VI[e.cve.severity]}]: {e.why.vi}"
            for e in found
        ),
        en="; ".join(f"{e.cve.label} [{e.cve.kind}, {e.cve.severity}]: {e.why.en}" for e in found),
    )


# --- ssh.config ------------------------------------------------------------------------


class Expectation(Params):
    """What one `sshd -T` keyword must hold; give one or more conditions."""

    equals: str | None = None
    one_of: tuple[str, ...] | None = None
    at_most: int | None = None
    at_least: int | None = None
    excludes: tuple[str, ...] | None = None
    """Patterns that no comma-separated item of the value may match (algorithm lists)."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if all(v is None for v in (self.equals, self.one_of, self.at_most, self.at_least, self.excludes)):
            raise ValueError("give equals, one_of, at_most, at_least or excludes")
        return self

    def problem(self, value: str) -> Text | None:
        """Why `value` misses the expectation, or None when it meets it."""
        text = value.strip().lower()
        if self.equals is not None and text != self.equals.lower():
            return Text(
                vi=f"có giá trị {value!r}, yêu cầu {self.equals!r}",
                en=f"is {value!r}, expected {self.equals!r}",
            )
        if self.one_of is not None and text not in {v.lower() for v in self.one_of}:
            return Text(
                vi=f"có giá trị {value!r}, yêu cầu một trong {list(self.one_of)}",
                en=f"is {value!r}, expected one of {list(self.one_of)}",
            )
        if self.at_most is not None or self.at_least is not None:
            number = _leading_int(text)
            if number is None:
                return Text(vi=f"có giá trị {value!r}, không phải là số", en=f"is {value!r}, not a number")
            if self.at_most is not None and number > self.at_most:
                return Text(
                    vi=f"có giá trị {number}, yêu cầu tối đa {self.at_most}",
                    en=f"is {number}, expected at most {self.at_most}",
                )
            if self.at_least is not None and number < self.at_least:
                return Text(
                    vi=f"có giá trị {number}, yêu cầu tối thiểu {self.at_least}",
                    en=f"is {number}, expected at least {self.at_least}",
                )
        if self.excludes is not None and (hits := _matching(tuple(text.split(",")), self.excludes)):
            names = ", ".join(hits)
            return Text(vi=f"chứa {names}", en=f"contains {names}")
        return None


def _leading_int(text: str) -> int | None:
    head = text.split(":")[0].split()[0] if text.split() else ""
    return int(head) if head.isdigit() else None


WithoutCredentials = Literal["error", "not_applicable"]


def _config_unread(data: SshData, without_credentials: WithoutCredentials, expected: object) -> Verdict:
    """The verdict of a rule on `sshd -T` when its output is missing: an error, unless no credential
    was given and the policy accepts that the setting is only checked where credentials exist."""
    if data.config_error is not None:
        return Verdict.cannot_judge(
            f"sshd -T could not be collected (probe step {CONFIG_STEP}): {data.config_error}",
            None,
            expected,
            vi=f"không thu thập được kết quả sshd -T (bước thăm dò {CONFIG_STEP}): {data.config_error}",
        )
    message = Text(
        vi="không có thông tin xác thực cho máy chủ này nên chưa đọc được cấu hình sshd đang có hiệu lực",
        en="no credential for this host, so the effective sshd configuration was not read",
    )
    if without_credentials == "not_applicable":
        return Verdict.not_applicable(message.en, vi=message.vi)
    return Verdict.cannot_judge(message.en, None, expected, vi=message.vi)


class ConfigParams(Params):
    expect: dict[str, Expectation]
    """Keyed by `sshd -T` keyword, case-insensitive (e.g. `permitrootlogin`)."""
    without_credentials: WithoutCredentials = "error"
    """Verdict when no credential was given for the host: an error finding (fail closed) unless
    the policy accepts that the setting is only checked where credentials exist."""

    @field_validator("expect")
    @classmethod
    def _lower_keys(cls, value: dict[str, Expectation]) -> dict[str, Expectation]:
        if not value:
            raise ValueError("expect at least one setting")
        return {key.lower(): expectation for key, expectation in value.items()}


@CONTROLS.control("ssh.config", ConfigParams, needs=(CONFIG_STEP, MATCH_STEP), partial=True)
def _config(data: SshData, params: ConfigParams, target: Target) -> Verdict:
    """The effective sshd configuration (sshd -T) meets expectations.

    Much of what matters (PermitRootLogin, MaxAuthTries, LoginGraceTime, ...) never crosses the
    wire; `sshd -T` prints the configuration sshd actually uses, after includes and defaults. It
    needs a credential: without one the verdict is an error (a missing fact is never a pass),
    unless the params accept not_applicable. `sshd -T` shows what connections outside every
    `Match` block get: a setting a Match block changes for some users or addresses is never
    passed on it (an error naming the block); a failing value still fails.
    """
    return _within_match(_config_verdict(data, params), data, params.expect)


def _config_verdict(data: SshData, params: ConfigParams) -> Verdict:
    expected = {key: e.model_dump(exclude_none=True) for key, e in params.expect.items()}
    if data.config is None:
        return _config_unread(data, params.without_credentials, expected)
    observed = {key: data.config.get(key) for key in params.expect}
    problems: list[Text] = []
    for key, expectation in params.expect.items():
        value = data.config.get(key)
        problem = None if value is None else expectation.problem(value)
        if problem is not None:
            problems.append(Text(vi=f"{key} {problem.vi}", en=f"{key} {problem.en}"))
    # A keyword sshd -T did not print is a setting nobody saw: it alone never fails the server.
    unseen = ", ".join(key for key, value in observed.items() if value is None)
    if problems:
        if unseen:
            problems.append(
                Text(vi=f"{unseen} không có trong kết quả sshd -T", en=f"{unseen} not in the sshd -T output")
            )
        both = _joined(problems)
        return Verdict.failed(both.en, observed, expected, vi=both.vi)
    if unseen:
        return Verdict.cannot_judge(
            f"{unseen} not in the sshd -T output, so whether the configuration meets expectations"
            " cannot be told",
            observed,
            expected,
            vi=f"kết quả sshd -T không có {unseen} nên không xác định được cấu hình có đáp ứng yêu cầu"
            " hay không",
        )
    return Verdict.passed(
        "the effective configuration meets every expectation",
        observed,
        expected,
        vi="cấu hình đang có hiệu lực đáp ứng mọi yêu cầu",
    )


# --- ssh.forwarding_disabled -----------------------------------------------------------


class ForwardingParams(Params):
    without_credentials: WithoutCredentials = "error"
    """As for `ssh.config`: the verdict when no credential was given for the host."""


_FORWARDINGS = ("x11forwarding", "allowagentforwarding")
_DISABLE_FORWARDING = "disableforwarding"
_DISABLE_FORWARDING_BUG = "CVE-2025-32728"
"""Before OpenSSH 10.0 sshd ignored DisableForwarding for X11 and agent forwarding."""


@CONTROLS.control("ssh.forwarding_disabled", ForwardingParams, needs=(CONFIG_STEP, MATCH_STEP), partial=True)
def _forwarding_disabled(data: SshData, params: ForwardingParams, target: Target) -> Verdict:
    """X11 and agent forwarding are off in the effective sshd configuration.

    Forwarded X11 displays and agents let a compromised server reach back into the administrator's
    workstation. `sshd -T` prints X11Forwarding and AllowAgentForwarding as configured even when
    `DisableForwarding yes` overrides them, so those two lines alone fail a server that turned
    everything off with the one switch. Whether the switch really covers X11 and agent forwarding
    depends on the build: from OpenSSH 10.0 it does; before, it did not (CVE-2025-32728) unless the
    distribution backported the fix, which checks/ssh/data/ssh_cves.json records per release (the
    installed package decides when a credential read it, else the banner). A Match block that
    sets one of the three for some users or addresses makes a pass an error, as for `ssh.config`.
    """
    verdict = _forwarding_verdict(data, params)
    return _within_match(verdict, data, (*_FORWARDINGS, _DISABLE_FORWARDING))


def _forwarding_verdict(data: SshData, params: ForwardingParams) -> Verdict:
    expected = {
        **dict.fromkeys(_FORWARDINGS, "no"),
        "or": f"{_DISABLE_FORWARDING} yes, honoured by the build",
    }
    if data.config is None:
        return _config_unread(data, params.without_credentials, expected)
    observed = {key: data.config.get(key) for key in (*_FORWARDINGS, _DISABLE_FORWARDING)}
    unseen = [key for key, value in observed.items() if value is None]
    enabled = [key for key in _FORWARDINGS if (observed[key] or "no").strip().lower() != "no"]
    if not enabled and not any(key in unseen for key in _FORWARDINGS):
        return Verdict.passed(
            "X11 and agent forwarding are off",
            observed,
            expected,
            vi="chuyển tiếp X11 và agent đều đã tắt",
        )
    honoured: Exposure | None = None
    if (observed[_DISABLE_FORWARDING] or "").strip().lower() == "yes":
        honoured = _disable_forwarding_honoured(data)
        if honoured.outcome == "clear":
            return Verdict.passed(
                "DisableForwarding yes turns X11 and agent forwarding off on this build"
                f" ({_DISABLE_FORWARDING_BUG}: {honoured.why.en})",
                observed,
                expected,
                vi="DisableForwarding yes tắt chuyển tiếp X11 và agent trên bản build này"
                f" ({_DISABLE_FORWARDING_BUG}: {honoured.why.vi})",
            )
        if honoured.outcome == "undecided":
            return Verdict.cannot_judge(
                f"DisableForwarding yes is set, but whether this build honours it for X11 and agent"
                f" forwarding ({_DISABLE_FORWARDING_BUG}) cannot be told: {honoured.why.en}",
                observed,
                expected,
                vi=f"DisableForwarding yes đã được đặt nhưng không xác định được bản build này có áp dụng"
                f" nó cho chuyển tiếp X11 và agent hay không ({_DISABLE_FORWARDING_BUG}): {honoured.why.vi}",
            )
    # Here a forwarding line is missing, or one is on: judged only if the switch that could
    # override it was seen.
    if not enabled or observed[_DISABLE_FORWARDING] is None:
        names = ", ".join(unseen)
        return Verdict.cannot_judge(
            f"{names} not in the sshd -T output, so whether forwarding is off cannot be told",
            observed,
            expected,
            vi=f"kết quả sshd -T không có {names} nên không xác định được chuyển tiếp đã tắt hay chưa",
        )
    names = ", ".join(f"{key} {observed[key]}" for key in enabled)
    ignored = Text(vi="", en="")
    if honoured is not None:
        ignored = Text(
            vi=f"; bản build này bỏ qua DisableForwarding yes đối với chúng ({_DISABLE_FORWARDING_BUG}:"
            f" {honoured.why.vi})",
            en=f"; this build ignores DisableForwarding yes for them ({_DISABLE_FORWARDING_BUG}:"
            f" {honoured.why.en})",
        )
    return Verdict.failed(
        f"forwarding is on ({names}){ignored.en}",
        observed,
        expected,
        vi=f"chuyển tiếp đang bật ({names}){ignored.vi}",
    )


def _disable_forwarding_honoured(data: SshData) -> Exposure:
    """Whether this build carries the fix that makes DisableForwarding cover X11 and agent
    forwarding: `clear` of the bug that ignored it."""
    [bug] = [c for c in cve_table().cves if c.id == _DISABLE_FORWARDING_BUG]
    return _exposure(bug, data)
