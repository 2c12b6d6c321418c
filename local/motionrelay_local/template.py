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
LAYER_TYPE = "AWS::Serverless::LayerVersion"
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


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


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

    def parameter_values(self, overrides: dict[str, str]) -> dict[str, str]:
        """Every parameter's value: the override, else its Default (CloudFormation refuses a
        parameter with neither, and so does this)."""
        values = {}
        for name, declared in self.parameters.items():
            if name in overrides:
                values[name] = str(overrides[name])
            elif "Default" in (declared or {}):
                values[name] = _as_text(declared["Default"])
            else:
                raise TemplateError(f"parameter {name} has no Default and no value was given")
        return values

    def check_parameter(self, values: dict[str, str], skip: Iterable[str] = ()) -> None:
        """AllowedPattern / AllowedValues, as CloudFormation checks them before a deploy."""
        import re

        for name, value in values.items():
            declared = self.parameters.get(name)
            if declared is None or name in skip:
                continue
            pattern = declared.get("AllowedPattern")
            if pattern and not re.fullmatch(str(pattern), value):
                reason = declared.get("ConstraintDescription") or pattern
                raise TemplateError(f"parameter {name}={value!r}: {reason}")
            allowed = declared.get("AllowedValues")
            if allowed and value not in [_as_text(v) for v in allowed]:
                raise TemplateError(f"parameter {name}={value!r}: one of {', '.join(map(str, allowed))}")

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


# -- what a deployment would resolve: intrinsics, per-function environment and policies ------

PSEUDO_PARAMETERS = ("AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix")


class Resolver:
    """Resolves `!Ref`, `!GetAtt`, `!Sub`, `!Join`, `!If` against the local resources, the
    parameters (defaults, overridden like `sam deploy --parameter-overrides`) and the pseudo
    parameters. A reference to something the local stack did not create is an error: a
    variable or grant that names it would be wrong here as well as in AWS."""

    def __init__(self, template: SamTemplate, *, refs: dict[str, str], attributes: dict[str, str],
                 parameters: dict[str, str], pseudo: dict[str, str]) -> None:
        self.template = template
        self.refs = refs  # logical id -> Ref value
        self.attributes = attributes  # "LogicalId.Attr" -> value
        self.parameters = parameters
        self.pseudo = pseudo

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"!Ref {name}: not a parameter or a resource the local stack created")

    def get_att(self, target: str | list) -> str:
        key = target if isinstance(target, str) else ".".join(str(p) for p in target)
        if key not in self.attributes:
            raise TemplateError(f"!GetAtt {key}: not an attribute of a resource the local stack created")
        return self.attributes[key]

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        import re

        def one(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name not in self.pseudo:
                return self.get_att(name)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def condition(self, name: str) -> bool:
        conditions = self.template.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name} is not declared")
        return bool(self._condition_value(conditions[name]))

    def _condition_value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (fn, args), = node.items()
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in args)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._condition_value(args[0])
            if fn == "Fn::And":
                return all(self._condition_value(x) for x in args)
            if fn == "Fn::Or":
                return any(self._condition_value(x) for x in args)
            if fn == "Condition":
                return self.condition(args)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        """A template value with every intrinsic replaced; `AWS::NoValue` drops the key."""
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, args), = node.items()
            if fn == "Ref":
                return NO_VALUE if args == "AWS::NoValue" else self.ref(args)
            if fn == "Fn::GetAtt":
                return self.get_att(args)
            if fn == "Fn::Sub":
                text, variables = (args, {}) if isinstance(args, str) else (args[0], args[1])
                return self._sub(text, variables)
            if fn == "Fn::Join":
                return str(args[0]).join(str(self.resolve(x)) for x in args[1])
            if fn == "Fn::If":
                name, yes, no = args
                return self.resolve(yes if self.condition(name) else no)
            if fn == "Fn::Select":
                return self.resolve(args[1])[int(self.resolve(args[0]))]
            if fn.startswith("Fn::"):
                raise TemplateError(f"{fn} is not resolved by the local stack")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def _as_env_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def function_environment(template: SamTemplate, spec: FunctionSpec, resolver: Resolver) -> dict[str, str]:
    """The function's Environment.Variables as SAM deploys them: Globals, then its own on top."""
    globals_vars = ((template.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    props = ((template.template.get("Resources") or {}).get(spec.logical_id) or {}).get("Properties") or {}
    own = (props.get("Environment") or {}).get("Variables") or {}
    merged = dict(globals_vars.get("Variables") or {}) | dict(own)
    env: dict[str, str] = {}
    for name, raw in merged.items():
        value = resolver.resolve(raw)
        if value is NO_VALUE:
            continue
        if isinstance(value, (dict, list)):
            raise TemplateError(f"{spec.logical_id}: environment variable {name} is not a string")
        env[str(name)] = _as_env_value(value)
    return env


def function_property(template: SamTemplate, spec: FunctionSpec, name: str, resolver: Resolver) -> Any:
    """A function property with Globals applied and intrinsics resolved (None when unset)."""
    globals_fn = (template.template.get("Globals") or {}).get("Function") or {}
    props = ((template.template.get("Resources") or {}).get(spec.logical_id) or {}).get("Properties") or {}
    raw = props.get(name, globals_fn.get(name))
    value = resolver.resolve(raw) if raw is not None else None
    return None if value is NO_VALUE else value


def function_statements(template: SamTemplate, spec: FunctionSpec, resolver: Resolver) -> list:
    """Every statement of the role SAM makes for the function: its `Policies` (inline documents,
    managed policy names, SAM policy templates) plus what SAM adds on its own: basic logging,
    X-Ray with `Tracing: Active`, the SQS event source's managed policy, and send rights for an
    SQS on-failure destination."""
    from motionrelay_local import iam

    statements: list[iam.Statement] = list(iam.managed_policy("AWSLambdaBasicExecutionRole"))
    policies = function_property(template, spec, "Policies", resolver) or []
    if isinstance(policies, (str, dict)):
        policies = [policies]
    for policy in policies:
        if isinstance(policy, str):
            statements += iam.managed_policy(policy.rsplit("/", 1)[-1])
        elif isinstance(policy, dict) and "Statement" in policy:
            statements += iam.statements_from_document(policy, source="inline")
        elif isinstance(policy, dict) and len(policy) == 1:
            (name, params), = policy.items()
            statements += iam.sam_policy_template(name, {k: str(v) for k, v in (params or {}).items()},
                                                  region=resolver.pseudo["AWS::Region"],
                                                  account=resolver.pseudo["AWS::AccountId"])
        else:
            raise TemplateError(f"{spec.logical_id}: a Policies entry the local stack cannot read: "
                                f"{policy!r}")
    if str(function_property(template, spec, "Tracing", resolver) or "") == "Active":
        statements += iam.managed_policy("AWSXrayWriteOnlyAccess")
    if spec.events_of_type("SQS"):
        statements += iam.managed_policy("AWSLambdaSQSQueueExecutionRole")
    invoke_config = function_property(template, spec, "EventInvokeConfig", resolver) or {}
    for outcome in ("OnFailure", "OnSuccess"):
        destination = ((invoke_config.get("DestinationConfig") or {}).get(outcome) or {})
        if destination.get("Type") == "SQS" and destination.get("Destination"):
            statements.append(iam.Statement(effect="Allow", actions=("sqs:SendMessage",),
                                            resources=(str(destination["Destination"]),),
                                            sid=f"{outcome}Destination", source="SAM EventInvokeConfig"))
    return statements


def schedule_seconds(expression: str) -> float:
    """`rate(1 minute)` -> 60. cron() schedules are not emulated (their rate is not fixed)."""
    import re

    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise TemplateError(f"schedule {expression!r}: only rate(...) expressions are emulated")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit
