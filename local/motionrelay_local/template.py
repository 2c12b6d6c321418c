"""Reads the SAM template the way the local stack needs it.

The local stack cannot run CloudFormation, but it can take from `template.yaml` what decides
how the functions are invoked: each `AWS::Serverless::Function`'s code folder, handler,
timeout and memory (Globals applied), its `HttpApi` routes, its SQS event settings. Reading
these from the template, instead of a hand-kept copy, keeps the local stack honest: a route
missing from the template is missing locally too.

The template is parsed with cfn-lint's decoder, which understands the short-form intrinsic
tags (`!Ref`, `!GetAtt`, `!Sub`) that plain YAML loaders reject.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motionrelay_local.apigw import Route

log = logging.getLogger("motionrelay_local")

FUNCTION_TYPE = "AWS::Serverless::Function"
# Lambda's own defaults when neither the function nor Globals set them.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128


class TemplateError(Exception):
    """template.yaml is missing, unparsable or declares something the local stack cannot run."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str  # "module.function", as in the template
    timeout: int
    memory: int
    function_name: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The function's folder name (`functions/<folder>/`)."""
        return self.code_dir.name

    def events_of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e.get("Type") in types]


def load_template(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TemplateError(f"{path} not found: the local stack builds its routes from the SAM template")
    from cfnlint.decode import decode_str  # lazy: cfn-lint is a large import

    template, matches = decode_str(path.read_text(encoding="utf-8"))
    if matches or template is None:
        details = "; ".join(str(m) for m in matches) or "empty template"
        raise TemplateError(f"{path}: {details}")
    return template


def _scalar(value: Any, parameters: dict[str, Any]) -> Any:
    """A literal, or a `!Ref` to a template parameter with a Default; anything else is None."""
    if isinstance(value, dict):
        if list(value) == ["Ref"] and value["Ref"] in parameters:
            return parameters[value["Ref"]].get("Default")
        return None
    return value


class SamTemplate:
    """The parts of a SAM template the local stack runs: functions, routes, event settings."""

    def __init__(self, template: dict[str, Any], root: Path) -> None:
        self.template = template
        self.root = root
        self.parameters: dict[str, Any] = dict(template.get("Parameters") or {})
        self.functions: dict[str, FunctionSpec] = self._read_functions()

    @classmethod
    def from_file(cls, path: Path, root: Path | None = None) -> SamTemplate:
        return cls(load_template(path), root or path.parent)

    def _read_functions(self) -> dict[str, FunctionSpec]:
        globals_fn = dict((self.template.get("Globals") or {}).get("Function") or {})
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in (self.template.get("Resources") or {}).items():
            if not isinstance(resource, dict) or resource.get("Type") != FUNCTION_TYPE:
                continue
            props = dict(resource.get("Properties") or {})

            def prop(name: str, default: Any = None, _props: dict = props) -> Any:
                value = _scalar(_props.get(name, globals_fn.get(name)), self.parameters)
                return default if value is None else value

            code_uri, handler = prop("CodeUri"), prop("Handler")
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                log.warning("template: %s has no local CodeUri/Handler; it cannot run locally", logical_id)
                continue
            name = prop("FunctionName")
            specs[logical_id] = FunctionSpec(
                logical_id=str(logical_id),
                code_dir=(self.root / code_uri).resolve(),
                handler=str(handler),
                timeout=int(prop("Timeout", DEFAULT_TIMEOUT)),
                memory=int(prop("MemorySize", DEFAULT_MEMORY)),
                function_name=str(name) if isinstance(name, str) else f"motionrelay-local-{logical_id}",
                events={
                    str(k): dict(v) for k, v in (props.get("Events") or {}).items() if isinstance(v, dict)
                },
            )
        return specs

    def http_routes(self) -> list[Route]:
        """Every `HttpApi` event of every function, as a route to that function."""
        routes: list[Route] = []
        for spec in self.functions.values():
            for event in spec.events_of_type("HttpApi"):
                props = event.get("Properties") or {}
                version = str(props.get("PayloadFormatVersion", "2.0"))
                if version != "2.0":
                    raise TemplateError(
                        f"{spec.logical_id}: PayloadFormatVersion {version} is not emulated (2.0 only)"
                    )
                path = props.get("Path")
                method = str(props.get("Method") or "ANY").upper()
                # SAM: an HttpApi event without a Path is the API's $default route.
                routes.append(
                    Route(method=method, path=str(path) if path else "$default", target=spec.logical_id)
                )
        return routes

    def environment(self, specs: Iterable[FunctionSpec]) -> dict[str, str]:
        """The Environment.Variables (Globals, then each function) that resolve without AWS.

        Literals and `!Ref`s to parameters resolve to their values; references to resources
        (table names, queue URLs) do not, and the local stack sets those itself. One process
        has one environment, so a name two functions set differently keeps the first value.
        """
        globals_vars = ((self.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        resources = self.template.get("Resources") or {}
        layers = [globals_vars.get("Variables") or {}]
        for spec in specs:
            props = (resources.get(spec.logical_id) or {}).get("Properties") or {}
            layers.append((props.get("Environment") or {}).get("Variables") or {})
        env: dict[str, str] = {}
        for i, variables in enumerate(layers):
            for name, raw in variables.items():
                value = _scalar(raw, self.parameters)
                if value is None:
                    continue
                value = str(value).lower() if isinstance(value, bool) else str(value)
                if i and name in env and env[name] != value and name not in layers[0]:
                    log.warning("template: %s differs between functions; using %r locally", name, env[name])
                    continue
                env[str(name)] = value
        return env

    def function_for_folder(self, folder: str) -> FunctionSpec | None:
        """The function whose CodeUri is `functions/<folder>/` (the layout fixes the folders)."""
        for spec in self.functions.values():
            if spec.folder == folder:
                return spec
        return None

    def function_for_queue(self, queue_logical_id: str) -> FunctionSpec | None:
        """The function with an SQS event on `!GetAtt <queue_logical_id>.Arn` (the queue's
        consumer, whatever its folder is called: NotifyQueue -> functions/notifier/)."""
        for spec in self.functions.values():
            for event in spec.events_of_type("SQS"):
                queue = (event.get("Properties") or {}).get("Queue")
                target = queue.get("Fn::GetAtt") if isinstance(queue, dict) else None
                if isinstance(target, str):
                    target = target.split(".")
                if isinstance(target, list) and target and target[0] == queue_logical_id:
                    return spec
        return None
