"""GET /api/openapi.json: an OpenAPI 3.1 document built from benchd.api.ENDPOINTS, with body
schemas generated from the msgspec Structs in benchd.schema (so it cannot drift from them)."""
from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import Any

import msgspec

from benchd.schema import ErrorBody, WsMessage

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=struct.__name__)}


def _item(t: Any) -> type:
    """The Struct a body is made of: T for T and for list[T]."""
    return typing.get_args(t)[0] if typing.get_origin(t) is list else t


def _schema(t: Any) -> dict[str, Any]:
    if typing.get_origin(t) is list:
        return {"type": "array", "items": _ref(_item(t))}
    return _ref(t)


def build(endpoints: Sequence[Any], version: str) -> dict[str, Any]:
    """The OpenAPI document for `endpoints` (benchd.api.Endpoint)."""
    structs = {ErrorBody} | {_item(s) for ep in endpoints for s in (ep.ok_schema, ep.body) if s}
    _, components = msgspec.json.schema_components(
        sorted(structs, key=lambda s: s.__name__) + [WsMessage], ref_template=_REF)
    error = {"application/json": {"schema": _ref(ErrorBody)}}
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {"summary": ep.summary,
                              "operationId": ep.handler.__name__, "responses": {}}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _PATH_PARAM.findall(ep.path)]
        params += [{"name": p.name, "in": "query", "required": False, "description": p.doc,
                    "schema": {"type": p.kind}} for p in ep.query]
        if params:
            op["parameters"] = params
        if ep.body is not None:
            op["requestBody"] = {"required": ep.body_required, "content": {
                "application/json": {"schema": _ref(ep.body)}}}
        for status, text in sorted(ep.responses.items()):
            resp: dict[str, Any] = {"description": text}
            if status >= 400:
                resp["content"] = error
            elif status != 101:
                schema = _schema(ep.ok_schema) if ep.ok_schema else (
                    {"type": "string"} if ep.ok_content.startswith("text/") else {})
                resp["content"] = {ep.ok_content: {"schema": schema}}
            op["responses"][str(status)] = resp
        op["responses"]["default"] = {"description": "error (404 route, 405 method, 500)",
                                      "content": error}
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "benchd", "version": version,
                 "description": "Benchmark job daemon. HTTP/1.1 + JSON over a Unix socket; "
                                "the caller is identified by SO_PEERCRED."},
        "paths": paths,
        "components": {"schemas": components},
    }


_cache: dict[tuple[int, str], bytes] = {}


def document_bytes(endpoints: Sequence[Any], version: str) -> bytes:
    """The encoded document, built once per endpoint table (it never changes at run time)."""
    key = (id(endpoints), version)
    if key not in _cache:
        _cache[key] = msgspec.json.encode(build(endpoints, version))
    return _cache[key]
