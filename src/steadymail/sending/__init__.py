"""The send pipeline: render, MIME, DKIM, SMTP transport, and the worker that drives them."""
