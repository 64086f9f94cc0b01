"""Every domain error a route's handler can raise is declared in its Endpoint.errors, the one
table the OpenAPI document and README's API table come from (so a 507 cannot go undocumented
again). The check reads the code: from each handler it follows the calls into benchd's own
modules (module functions, JobManager methods through `manager`/`self`, functions passed to
asyncio.to_thread) and collects every `raise SomeBenchdError(...)` on the way. It
over-approximates (a raise in a branch a handler never takes still counts), never the
other way round."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from pathlib import Path
from types import ModuleType

import benchd.errors as errors
from benchd.api import ENDPOINTS
from benchd.openapi import build

README = Path(__file__).resolve().parents[2] / "README.md"
MODULES = ("benchd.api", "benchd.app", "benchd.jobs", "benchd.discard", "benchd.resume",
           "benchd.schema", "benchd.peercred", "benchd.logtail")
ERROR_CLASSES = {name: cls for name, cls in vars(errors).items()
                 if isinstance(cls, type) and issubclass(cls, errors.BenchdError)}
Key = tuple[str, str]   # (module name or class name, function name)


class _Index:
    def __init__(self) -> None:
        self.mods: dict[str, ModuleType] = {m: importlib.import_module(m) for m in MODULES}
        self.funcs: dict[Key, tuple[ModuleType, str | None, ast.AST]] = {}
        for name, mod in self.mods.items():
            tree = ast.parse(textwrap.dedent(inspect.getsource(mod)))
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.funcs[(name, node.name)] = (mod, None, node)
                elif isinstance(node, ast.ClassDef):
                    for sub in node.body:
                        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            self.funcs[(node.name, sub.name)] = (mod, node.name, sub)

    def _resolve(self, expr: ast.AST, mod: ModuleType, cls: str | None) -> Key | None:
        if isinstance(expr, ast.Name):
            obj = getattr(mod, expr.id, None)
            owner = getattr(obj, "__module__", None)
            return (owner, expr.id) if (owner, expr.id) in self.funcs else None
        if isinstance(expr, ast.Attribute):
            base = expr.value
            if isinstance(base, ast.Name) and base.id == "self" and cls:
                return (cls, expr.attr)
            if (isinstance(base, ast.Name) and base.id == "manager") or \
                    (isinstance(base, ast.Attribute) and base.attr == "manager"):
                return ("JobManager", expr.attr)
            if isinstance(base, ast.Name):
                target = getattr(mod, base.id, None)
                if isinstance(target, ModuleType) and (target.__name__, expr.attr) in self.funcs:
                    return (target.__name__, expr.attr)
        return None

    def raised(self, start: Key) -> set[str]:
        seen: set[Key] = set()
        todo, out = [start], set()
        while todo:
            key = todo.pop()
            if key in seen or key not in self.funcs:
                continue
            seen.add(key)
            mod, cls, fn = self.funcs[key]
            for node in ast.walk(fn):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                    if isinstance(exc, ast.Name) and exc.id in ERROR_CLASSES:
                        out.add(exc.id)
                if isinstance(node, ast.Call):
                    for expr in (node.func, *node.args):  # to_thread(fn, ...) calls fn
                        k = self._resolve(expr, mod, cls)
                        if k is not None:
                            todo.append(k)
        return out


def test_every_error_a_handler_can_raise_is_declared_on_its_route() -> None:
    index = _Index()
    missing = {}
    for ep in ENDPOINTS:
        can_raise = index.raised((ep.handler.__module__, ep.handler.__name__))
        declared = {cls.__name__ for cls in ep.errors}
        if can_raise - declared:
            missing[f"{ep.method} {ep.path}"] = sorted(can_raise - declared)
    assert not missing, f"undeclared errors (add them to Endpoint.errors): {missing}"


def test_the_checker_sees_the_507_of_a_job_start() -> None:
    index = _Index()
    assert {"InsufficientStorage", "Busy", "InvalidRequest", "RunInUse"} <= \
        index.raised(("benchd.api", "start_job"))


def test_openapi_responses_are_the_declared_errors() -> None:
    doc = build(ENDPOINTS, "test")
    for ep in ENDPOINTS:
        responses = doc["paths"][ep.path][ep.method.lower()]["responses"]
        for cls in ep.errors:
            assert str(cls.http_status) in responses, (ep.path, cls.__name__)
            assert f"`{cls.code}`" in responses[str(cls.http_status)]["description"]
    assert "507" in doc["paths"]["/api/benchmark/jobs"]["post"]["responses"]


def test_readme_api_table_names_every_declared_error_status() -> None:
    section = README.read_text().split("\n## API\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`?]+)[^|]*\|[^|]*\|(.*)\|\s*$", line)
        if m:
            rows[(m[1], re.sub(r"{\w+}", "{}", m[2]))] = m[3]
    for ep in ENDPOINTS:
        cell = rows[(ep.method, re.sub(r"{\w+}", "{}", ep.path))]
        for cls in ep.errors:
            assert re.search(rf"\b{cls.http_status}\b", cell), \
                (ep.method, ep.path, cls.__name__, cell)
