"""Which migrations are applied, pending, drifted or out of order: pure functions of files and ledger.

Nothing here touches a database or the clock. The runner asks for a plan under the
migration lock and carries it out; ``status`` and ``plan`` show the same plan without the lock.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jobs.migrations.files import Discovery, MigrationFile
from railyard.core.errors import PermanentError
from railyard.core.settings import is_production

BUILTIN = "railyard"  # Railyard's own tables, from jobs/migrations/builtin
APP = "app"  # the application's migrations, from MIGRATIONS_DIR
NAMESPACES = (BUILTIN, APP)

EXIT_UP_TO_DATE = 0
EXIT_PROBLEM = 1
EXIT_PENDING = 3


@dataclass(frozen=True)
class AppliedMigration:
    """One row of the ledger."""

    namespace: str
    version: int
    name: str
    checksum: str
    applied_at: datetime | None = None
    duration_ms: int | None = None
    applied_by: str | None = None


@dataclass(frozen=True)
class Drift:
    """An applied migration whose file no longer matches what was applied."""

    file: MigrationFile
    applied: AppliedMigration

    def message(self, namespace: str) -> str:
        what = (
            f"was renamed from {self.applied.name}"
            if self.file.checksum == self.applied.checksum
            else f"changed after it was applied (sha256 {self.applied.checksum[:12]} applied, "
            f"{self.file.checksum[:12]} now)"
        )
        return (
            f"{self.file.display} {what}; restore the applied version, or if the change is harmless "
            f"accept it with --accept-checksum {accept_label(namespace, self.file.version)}"
        )


@dataclass(frozen=True)
class Plan:
    """What ``up`` would do in one namespace."""

    namespace: str
    applied: tuple[AppliedMigration, ...]
    pending: tuple[MigrationFile, ...]  # every file not in the ledger, in order
    to_apply: tuple[MigrationFile, ...]  # the pending ones this run applies (up to the target)
    drifted: tuple[Drift, ...] = ()  # not accepted: each stops the run
    accepted: tuple[Drift, ...] = ()  # accepted with --accept-checksum: the ledger is updated
    missing: tuple[AppliedMigration, ...] = ()  # in the ledger, file gone
    out_of_order: tuple[MigrationFile, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class DownPlan:
    namespace: str
    to_revert: tuple[tuple[AppliedMigration, MigrationFile], ...] = ()  # newest first
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceptSpec:
    """Versions whose changed checksum the operator accepts, per namespace."""

    versions: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, values: Iterable[str]) -> AcceptSpec:
        """``3`` or ``0003`` means the application's migration 3; ``railyard:1`` Railyard's own."""
        parsed = set()
        for raw in values:
            namespace, _, number = raw.strip().rpartition(":")
            namespace = namespace or APP
            if namespace not in NAMESPACES or not (number.isascii() and number.isdigit()):
                raise PermanentError(
                    f"--accept-checksum {raw!r} is not a migration number; use e.g. 3, or railyard:1 for Railyard's"
                )
            parsed.add((namespace, int(number)))
        return cls(frozenset(parsed))

    def for_namespace(self, namespace: str) -> frozenset[int]:
        return frozenset(v for ns, v in self.versions if ns == namespace)


def accept_label(namespace: str, version: int) -> str:
    return str(version) if namespace == APP else f"{namespace}:{version}"


def plan_up(
    namespace: str,
    discovery: Discovery,
    applied: Iterable[AppliedMigration],
    *,
    target: int | None = None,
    allow_out_of_order: bool = False,
    accept: Collection[int] = (),
) -> Plan:
    """Compare files with the ledger and decide what ``up`` applies in ``namespace``."""
    ledger = sorted((a for a in applied if a.namespace == namespace), key=lambda a: a.version)
    by_version = {a.version: a for a in ledger}
    files = discovery.by_version()
    problems = list(discovery.problems)
    warnings = list(discovery.warnings)

    drifted: list[Drift] = []
    accepted: list[Drift] = []
    for a in ledger:
        f = files.get(a.version)
        if f is not None and (f.checksum != a.checksum or f.name != a.name):
            (accepted if a.version in accept else drifted).append(Drift(f, a))
    problems.extend(d.message(namespace) for d in drifted)
    drifted_versions = {d.file.version for d in (*drifted, *accepted)}
    for version in sorted(set(accept) - drifted_versions):
        label = accept_label(namespace, version)
        if version in files and version in by_version:
            warnings.append(f"--accept-checksum {label}: {files[version].name} has not changed; nothing to accept")
        else:
            problems.append(f"--accept-checksum {label}: no applied migration numbered {version} has a file to accept")

    missing = tuple(a for a in ledger if a.version not in files)
    warnings.extend(
        f"{a.name} was applied (version {a.version}) but its file is no longer in {discovery.directory}"
        for a in missing
    )

    pending = tuple(f for f in discovery.migrations if f.version not in by_version)
    newest = ledger[-1] if ledger else None
    out_of_order = tuple(f for f in pending if newest is not None and f.version < newest.version)
    if newest is not None and out_of_order and not allow_out_of_order:
        problems.extend(
            f"{f.display} is pending but numbered below {newest.name}, the newest applied migration; "
            "renumber it above, or run with --allow-out-of-order if it does not depend on the ones after it"
            for f in out_of_order
        )

    to_apply = pending
    if target is not None:
        if target not in files and target not in by_version:
            newest_file = discovery.migrations[-1].name if discovery.migrations else "none"
            problems.append(f"--to {target}: no migration is numbered {target} (newest file: {newest_file})")
        to_apply = tuple(f for f in pending if f.version <= target)

    return Plan(
        namespace=namespace,
        applied=tuple(ledger),
        pending=pending,
        to_apply=to_apply,
        drifted=tuple(drifted),
        accepted=tuple(accepted),
        missing=missing,
        out_of_order=out_of_order,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def plan_down(
    namespace: str,
    discovery: Discovery,
    applied: Iterable[AppliedMigration],
    *,
    steps: int = 1,
    accept: Collection[int] = (),
) -> DownPlan:
    """The newest ``steps`` applied migrations to revert, or why that cannot be done."""
    if steps < 1:
        return DownPlan(namespace, problems=(f"--steps {steps}: revert at least 1 migration",))
    ledger = sorted((a for a in applied if a.namespace == namespace), key=lambda a: a.version, reverse=True)
    if steps > len(ledger):
        return DownPlan(
            namespace,
            problems=(f"--steps {steps}: only {len(ledger)} migration(s) are applied; give a smaller number",),
        )
    files = discovery.by_version()
    problems = list(discovery.problems)
    chosen: list[tuple[AppliedMigration, MigrationFile]] = []
    for a in ledger[:steps]:
        f = files.get(a.version)
        if f is None:
            problems.append(f"{a.name} cannot be reverted: its file is no longer in {discovery.directory}")
            continue
        if (f.checksum != a.checksum or f.name != a.name) and a.version not in accept:
            problems.append(Drift(f, a).message(namespace))
            continue
        if not f.has_down:
            how = "a '-- migrate:down' section" if f.kind == "sql" else "a downgrade(conn) function"
            problems.append(f"{f.display} has no down migration; add {how} to revert it")
            continue
        chosen.append((a, f))
    if problems:
        return DownPlan(namespace, problems=tuple(problems))
    return DownPlan(namespace, to_revert=tuple(chosen))


def status_exit_code(plans: Iterable[Plan]) -> int:
    """0 when up to date, 3 when migrations are pending, 1 on drift or any other problem."""
    plans = list(plans)
    if any(p.problems for p in plans):
        return EXIT_PROBLEM
    if any(p.pending for p in plans):
        return EXIT_PENDING
    return EXIT_UP_TO_DATE


def backup_decision(environment: str, requested: bool | None) -> tuple[bool, str]:
    """Whether to back up before migrating, and why: the flag wins, else production backs up."""
    if requested is True:
        return True, "--backup"
    if requested is False:
        return False, "--no-backup"
    if is_production(environment):
        return True, f"ENVIRONMENT={environment}"
    return False, f"ENVIRONMENT={environment}"


def retry_delays(retries: int, base_s: float, cap_s: float) -> tuple[float, ...]:
    """Exponential backoff before each retry after a lock timeout: base, 2*base, 4*base ... capped."""
    return tuple(min(cap_s, base_s * 2**i) for i in range(max(0, retries)))


def names_index(sql: str, bare: str) -> bool:
    """Whether ``sql`` mentions the index called ``bare`` (as a whole word)."""
    return re.search(rf"(?<![\w$]){re.escape(bare.lower())}(?![\w$])", sql.lower()) is not None


def drop_statements(qualified: Iterable[str]) -> str:
    """The statements that drop INVALID indexes (DROP INDEX CONCURRENTLY takes one index at a time)."""
    return " ".join(f"DROP INDEX CONCURRENTLY {name};" for name in qualified)


def with_invalid_indexes(plans: list[Plan], invalid: Mapping[str, str]) -> list[Plan]:
    """Report INVALID indexes (qualified -> bare name): a problem where a pending no-transaction
    migration names one (``up`` would stop at it), else a warning on the last namespace."""
    if not invalid or not plans:
        return plans
    extra: dict[str, tuple[list[str], list[str]]] = {p.namespace: ([], []) for p in plans}
    for qualified, bare in sorted(invalid.items()):
        naming = [
            (p.namespace, m)
            for p in plans
            for m in p.pending
            if not m.transactional and m.kind == "sql" and names_index(m.up_sql or "", bare)
        ]
        if naming:
            namespace, m = naming[0]
            extra[namespace][0].append(
                f"INVALID index {qualified} (left by a failed or interrupted CREATE INDEX CONCURRENTLY) is named by "
                f"pending {m.display}, which would stop at it; run {drop_statements([qualified])} then migrate up"
            )
        else:
            extra[plans[-1].namespace][1].append(
                f"INVALID index {qualified} (left by a failed or interrupted CREATE INDEX CONCURRENTLY): queries do "
                f"not use it, writes still maintain it; drop it with {drop_statements([qualified])}"
            )
    return [
        dataclasses.replace(
            p,
            problems=(*p.problems, *extra[p.namespace][0]),
            warnings=(*p.warnings, *extra[p.namespace][1]),
        )
        for p in plans
    ]
