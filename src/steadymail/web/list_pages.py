"""Lists, their contacts and CSV imports (with each refused line shown), and suppressions."""

import asyncio
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from steadymail.api.deps import state
from steadymail.services import csv_import, lists, suppressions
from steadymail.web.site import PREFIX, Admin, Signed, Viewer, Write, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE = 50

Name = Annotated[str, Form(min_length=1, max_length=200)]


def actor(who: Viewer) -> str:
    """How the audit logs name a person acting through the console: by their key."""
    return f"console (key sm_{who.session.who})"


@router.get("/lists")
def lists_page(request: Request, who: Viewer = Signed) -> HTMLResponse:
    st = state(request)
    return site(request).render(request, "lists.html", who, lists=lists.listing(st.engine))


@router.post("/lists")
def create_list(request: Request, name: Name, who: Viewer = Write) -> RedirectResponse:
    st = state(request)
    lists.create(st.engine, st.clock, name.strip())
    return RedirectResponse(f"{PREFIX}/lists/{quote(name.strip(), safe='')}", status_code=303)


# `:path`: a list's name may hold a `/` (sent as %2F, which the router sees decoded).
@router.get("/lists/{name:path}")
def list_page(
    request: Request,
    name: str,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
    who: Viewer = Signed,
) -> HTMLResponse:
    st = state(request)
    rows = lists.contacts_of(st.engine, name, PAGE + 1, page * PAGE, q.strip())
    summary = lists.summary(st.engine, name)
    return site(request).render(
        request,
        "list.html",
        who,
        name=name,
        summary=summary,
        contacts=rows[:PAGE],
        more=len(rows) > PAGE,
        page=page,
        q=q,
        report=None,
    )


@router.post("/lists/{name:path}/import")
async def import_page(
    request: Request, name: str, file: UploadFile, who: Viewer = Write
) -> HTMLResponse:
    """The import's report in place of the form: counts, then every refused line."""
    st = state(request)
    raw = await file.read()
    report = await asyncio.to_thread(csv_import.import_contacts, st.engine, st.clock, raw, name)
    return site(request).render(request, "_import_report.html", who, report=report, name=name)


@router.get("/suppressions")
def suppressions_page(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    who: Viewer = Signed,
) -> HTMLResponse:
    st = state(request)
    rows = suppressions.listing(st.engine, search=q.strip() or None, limit=200)
    return site(request).render(
        request,
        "suppressions.html",
        who,
        rows=rows,
        q=q,
        streams=("marketing", "transactional", "all"),
    )


@router.post("/suppressions")
def add_suppression(
    request: Request,
    email: Annotated[str, Form(min_length=3, max_length=320)],
    stream: Annotated[str, Form(max_length=20)] = "all",
    note: Annotated[str, Form(max_length=1000)] = "",
    who: Viewer = Write,
) -> RedirectResponse:
    st = state(request)
    suppressions.add(st.engine, st.clock, [email], stream, actor(who), note)
    return RedirectResponse(f"{PREFIX}/suppressions", status_code=303)


@router.post("/suppressions/remove")
def remove_suppression(
    request: Request,
    email: Annotated[str, Form(min_length=3, max_length=320)],
    reason: Annotated[str, Form(min_length=1, max_length=1000)],
    stream: Annotated[str, Form(max_length=20)] = "",
    who: Viewer = Admin,
) -> RedirectResponse:
    st = state(request)
    suppressions.remove(st.engine, st.clock, email, stream or None, actor(who), reason)
    return RedirectResponse(f"{PREFIX}/suppressions", status_code=303)
