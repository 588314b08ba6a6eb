"""``textrnn serve``: trained models behind an HTTP server.

- :mod:`~textrnn.serve.limits`: the server's limits (its options), declared once.
- :mod:`~textrnn.serve.requests`: what a request body may hold (every field checked, an error
  naming the field).
- :mod:`~textrnn.serve.batcher`: one language model shared by every generation request: each
  request's prompt is run once, then all active streams advance together, one batched step per
  token; :mod:`~textrnn.serve.jobs`: a request as its reader sees it.
- :mod:`~textrnn.serve.models`: the runs a server loads, by name.
- :mod:`~textrnn.serve.app`: the Starlette application and the uvicorn server (the ``serve``
  extra: ``pip install 'textrnn[serve]'``); ``page.html``: the page at ``/``.

Only :mod:`~textrnn.serve.app` needs the web libraries.
"""
