"""httpx's one-call functions and client for the tests, with one TLS context for the whole process.

``httpx.get`` builds a client for each call, and each client loads the CA bundle again (~20 ms of CPU); the
tests' polling loops did that hundreds of times. Here each call is still its own client and connection, with
httpx's defaults (no cookies kept, no redirects followed); only the TLS context is shared.
"""
from __future__ import annotations

import functools

import httpx

TLS = httpx.create_ssl_context()

get = functools.partial(httpx.get, verify=TLS)
post = functools.partial(httpx.post, verify=TLS)
put = functools.partial(httpx.put, verify=TLS)
delete = functools.partial(httpx.delete, verify=TLS)
request = functools.partial(httpx.request, verify=TLS)
client = functools.partial(httpx.Client, verify=TLS)
