"""The responses that are not JSON, as classes: a route declares one as its `response_class`, so
/docs names the media type it returns (a message's raw source, a postmortem draft, Prometheus
text)."""

from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST


class Rfc822Response(Response):
    media_type = "message/rfc822"


class MarkdownResponse(PlainTextResponse):
    media_type = "text/markdown"


class PrometheusResponse(PlainTextResponse):
    media_type = CONTENT_TYPE_LATEST
