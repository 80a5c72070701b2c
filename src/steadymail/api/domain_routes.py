"""REST routes of sending domains: add one (its keys and the records to publish), list them,
their records, check them, rotate their keys. Adding, checking and rotating need the admin
scope: they decide which keys sign the platform's mail and which From domains may send."""

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from steadymail.api.deps import Admin, AppState, Read
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.models import In
from steadymail.services import domains
from steadymail.services.domains import CheckResult, Setup

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

DomainName = Annotated[str, Path(min_length=1, max_length=253)]


class DomainIn(In):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=253, description="the From domain")


class KeyOut(BaseModel):
    selector: str
    algorithm: str
    state: str = Field(description="pending, active, retiring or retired")
    public_key: str = Field(description="base64, the record's p= value")
    created_at: float
    activated_at: float | None
    retiring_at: float | None


class DomainOut(BaseModel):
    name: str
    return_path_domain: str
    created_at: float
    checked_at: float | None
    verified_at: float | None = Field(description="null: not verified, sends refuse it")
    keys: list[KeyOut]


class RecordOut(BaseModel):
    name: str
    type: str = Field(description="TXT or MX")
    value: str
    why: str


class SetupOut(BaseModel):
    domain: DomainOut
    records: list[RecordOut] = Field(description="what to publish")


class FindingOut(BaseModel):
    record: str
    verdict: str = Field(description="ok, warning, missing or wrong")
    detail: str


class CheckOut(BaseModel):
    domain: DomainOut
    verified: bool
    findings: list[FindingOut]
    activated: list[str] = Field(description="selectors that sign from now on")
    retired: list[str] = Field(description="selectors whose records may now go")


def _domain(d: domains.SendingDomain) -> DomainOut:
    keys = [
        KeyOut(
            selector=k.selector,
            algorithm=k.algorithm,
            state=k.state,
            public_key=k.public_key,
            created_at=k.created_at,
            activated_at=k.activated_at,
            retiring_at=k.retiring_at,
        )
        for k in d.keys
    ]
    return DomainOut(
        name=d.name,
        return_path_domain=d.return_path_domain,
        created_at=d.created_at,
        checked_at=d.checked_at,
        verified_at=d.verified_at,
        keys=keys,
    )


def _setup(s: Setup) -> SetupOut:
    return SetupOut(
        domain=_domain(s.domain),
        records=[RecordOut(name=r.name, type=r.type, value=r.value, why=r.why) for r in s.records],
    )


def _check(c: CheckResult) -> CheckOut:
    return CheckOut(
        domain=_domain(c.domain),
        verified=c.verified,
        findings=[
            FindingOut(record=f.record, verdict=f.verdict.value, detail=f.detail)
            for f in c.findings
        ],
        activated=c.activated,
        retired=c.retired,
    )


@router.post("/domains", status_code=201)
def post_domain(body: DomainIn, st: AppState = Admin) -> SetupOut:
    """Add a sending domain with new RSA-2048 and Ed25519 keys; the records to publish."""
    return _setup(domains.add(st.engine, st.clock, st.settings, body.name))


@router.get("/domains")
def get_domains(st: AppState = Read) -> list[DomainOut]:
    return [_domain(d) for d in domains.all_domains(st.engine)]


@router.get("/domains/{name}/records")
def get_records(name: DomainName, st: AppState = Read) -> SetupOut:
    """The records the domain should publish now."""
    return _setup(domains.records(st.engine, st.settings, name))


@router.post("/domains/{name}/check")
def post_check(name: DomainName, st: AppState = Admin) -> CheckOut:
    """Look the records up: what is missing or wrong, record by record; published pending keys
    start signing."""
    return _check(domains.check(st.engine, st.clock, st.settings, name))


@router.post("/domains/{name}/rotate")
def post_rotate(name: DomainName, st: AppState = Admin) -> SetupOut:
    """New keys beside the active ones; they sign once a check finds them published."""
    return _setup(domains.rotate(st.engine, st.clock, st.settings, name))
