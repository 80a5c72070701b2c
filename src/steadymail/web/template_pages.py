"""Templates: a list, an editor whose preview renders for a chosen contact as one types, and
errors shown at their line."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from steadymail.api.deps import state
from steadymail.api.models import PathId
from steadymail.errors import ValidationError
from steadymail.services import lists, templates
from steadymail.services.templates import Rendered, TemplateSourceError
from steadymail.web.site import PREFIX, PREVIEW_CSP, ReadPost, Signed, Viewer, Write, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Subject = Annotated[str, Form(max_length=998)]
Part = Annotated[str, Form(max_length=1_000_000)]
Optional = Annotated[str, Form(max_length=320)]

STARTER = {
    "subject": "News for {{ contact.first_name | default('you') }}",
    "html": '<p>Hello {{ contact.first_name | default("there") }},</p>\n'
    '<p>Read <a href="https://example.com/news">the news</a>.</p>\n'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n',
    "text": "Hello {{ contact.first_name | default('there') }},\n"
    "Read the news: https://example.com/news\nUnsubscribe: {{ unsubscribe_url }}\n",
}


@router.get("/templates")
def templates_page(request: Request, who: Viewer = Signed) -> HTMLResponse:
    st = state(request)
    rows = templates.listing(st.engine)
    return site(request).render(request, "templates.html", who, templates=rows)


def _editor(request: Request, who: Viewer, **ctx: Any) -> HTMLResponse:
    st = state(request)
    return site(request).render(
        request, "template_edit.html", who, lists=lists.listing(st.engine, 200), **ctx
    )


@router.get("/templates/new")
def new_template(request: Request, who: Viewer = Signed) -> HTMLResponse:
    return _editor(request, who, template=None, **STARTER)


@router.get("/templates/{template_id}")
def edit_template(request: Request, template_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    t = templates.get(state(request).engine, template_id)
    return _editor(
        request,
        who,
        template=t,
        subject=t.subject,
        html=t.html,
        text=t.text,
        saved=request.query_params.get("saved") == "1",
    )


@router.post("/templates")
def create_template(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    subject: Subject,
    html: Part = "",
    text: Part = "",
    who: Viewer = Write,
) -> RedirectResponse:
    st = state(request)
    tid = templates.create_template(st.engine, st.clock, name.strip(), subject, html, text)
    return RedirectResponse(f"{PREFIX}/templates/{tid}?saved=1", status_code=303)


@router.post("/templates/{template_id}")
def save_template(
    request: Request,
    template_id: PathId,
    subject: Subject,
    html: Part = "",
    text: Part = "",
    who: Viewer = Write,
) -> RedirectResponse:
    templates.update_template(state(request).engine, template_id, subject, html, text)
    return RedirectResponse(f"{PREFIX}/templates/{template_id}?saved=1", status_code=303)


@dataclass(frozen=True)
class Draft:
    """What the editor posts to be previewed: the parts as typed, and for whom."""

    subject: str
    html: str
    text: str
    preview_list: str
    preview_email: str


def draft(
    subject: Subject,
    html: Part = "",
    text: Part = "",
    preview_list: Optional = "",
    preview_email: Optional = "",
) -> Draft:
    return Draft(subject, html, text, preview_list, preview_email)


Drafted = Depends(draft)


def _render(request: Request, d: Draft) -> Rendered:
    return templates.preview(
        state(request).engine, d.subject, d.html, d.text, d.preview_list, d.preview_email
    )


@router.post("/preview/check")
def check(request: Request, d: Draft = Drafted, who: Viewer = ReadPost) -> HTMLResponse:
    """The editor's live verdict: the rendered subject and text part, or the error with the
    line it is on."""
    s = site(request)
    try:
        rendered = _render(request, d)
    except TemplateSourceError as e:
        source = {"subject": d.subject, "html": d.html, "text": d.text}[e.part].splitlines()
        line = source[e.line - 1] if e.line and 0 < e.line <= len(source) else ""
        return s.render(request, "_template_check.html", who, error=str(e), at=e, line=line)
    except ValidationError as e:
        return s.render(request, "_template_check.html", who, error=str(e), at=None, line="")
    return s.render(request, "_template_check.html", who, error="", rendered=rendered)


@router.post("/preview/html")
def preview_html(request: Request, d: Draft = Drafted, who: Viewer = ReadPost) -> HTMLResponse:
    """The HTML part as the contact would get it, for the editor's sandboxed frame."""
    try:
        rendered = _render(request, d)
        body = rendered.html or site(request).templates.from_string("<pre>{{ text }}</pre>").render(
            text=rendered.text
        )
    except ValidationError as e:
        body = site(request).templates.from_string("<p>{{ e }}</p>").render(e=str(e))
    return HTMLResponse(
        body, headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"}
    )
