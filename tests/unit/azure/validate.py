"""Every JSON body the Azure backends send, checked against the installed SDKs' own models.

- Azure ML (azure-ai-ml's generated ``arm_ml_service`` models): every key must be a field the model
  declares (recursively, discriminated subtypes included) and every enum-typed value one of the enum's.
- ARM role assignments and ACR runs (msrest models of azure-mgmt-authorization / -containerregistry):
  deserialized with the model, ``Model.validate()`` (``_validation``: required, patterns, lengths) must
  pass and no key may be dropped as unknown. The ABAC quick build's
  ``credentials.sourceRegistry.identity`` (api-version 2025-03-01-preview, newer than the SDK) is checked
  against azure-cli's recorded request instead.
- Microsoft Graph (msgraph-sdk's kiota models): parsed into the model with nothing left in
  ``additional_data`` (a key Graph does not define).

``check(request)`` raises ``AssertionError`` naming the body and the problem; a JSON body no rule
covers is itself an error, so a new call cannot slip by unvalidated.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import typing
from typing import Any

from .replay import pick


def _unwrap(tp: Any, ns: dict[str, Any] | None = None) -> list[Any]:
    if isinstance(tp, typing.ForwardRef):
        try:
            tp = eval(tp.__forward_arg__, ns or {})
        except Exception:
            return [Any]
    if isinstance(tp, str):
        try:
            tp = eval(tp, ns or {})
        except Exception:
            return [Any]
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        return [t for a in typing.get_args(tp) for t in _unwrap(a, ns)]
    if origin is typing.Literal:
        return [("literal", typing.get_args(tp))]
    return [tp]


def _ns(cls: type) -> dict[str, Any]:
    from azure.ai.ml._restclient.arm_ml_service import models

    return {**vars(typing), **vars(sys.modules[cls.__module__]), "_models": models}


def _hints(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass, "__annotations__", {}))
    return out


def _check_hybrid(cls: type, data: Any, where: str, problems: list[str]) -> None:
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import Model

    if not isinstance(data, dict):
        problems.append(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
        return
    mapping = getattr(cls, "__mapping__", None) or {}
    disc = getattr(cls, "__dict__", {}).get("_discriminator") or next(
        (f._rest_name for f in cls({})._attr_to_rest_field.values() if getattr(f, "_is_discriminator", False)), None
    )
    if mapping and disc and data.get(disc) in mapping:
        cls = mapping[data[disc]]
    fields = {f._rest_name: (attr, f) for attr, f in cls({})._attr_to_rest_field.items()}
    hints = _hints(cls)
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{where}.{key}: not a field of {cls.__name__}")
            continue
        attr, _ = fields[key]
        for tp in _unwrap(hints.get(attr, Any), _ns(cls)):
            if isinstance(tp, tuple) and tp[0] == "literal":
                if value not in tp[1]:
                    problems.append(f"{where}.{key}: {value!r} not one of {tp[1]}")
            elif isinstance(tp, type) and issubclass(tp, enum.Enum):
                if value is not None and value not in {e.value for e in tp}:
                    problems.append(f"{where}.{key}: {value!r} not one of {cls.__name__}.{attr}'s {[e.value for e in tp]}")
            elif isinstance(tp, type) and issubclass(tp, Model) and isinstance(value, dict):
                _check_hybrid(tp, value, f"{where}.{key}", problems)
            elif typing.get_origin(tp) in (list, list) and isinstance(value, list):
                (inner,) = [*_unwrap((typing.get_args(tp) or (Any,))[0], _ns(cls))][:1] or [Any]
                if isinstance(inner, type) and issubclass(inner, Model):
                    for i, item in enumerate(value):
                        _check_hybrid(inner, item, f"{where}.{key}[{i}]", problems)


def _dropped(sent: Any, kept: Any, where: str, problems: list[str]) -> None:
    if isinstance(sent, dict):
        for k, v in sent.items():
            if not isinstance(kept, dict) or k not in kept:
                problems.append(f"{where}.{k}: dropped by the SDK model (not a field it knows)")
            else:
                _dropped(v, kept[k], f"{where}.{k}", problems)
    elif isinstance(sent, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(sent, kept, strict=False)):
            _dropped(a, b, f"{where}[{i}]", problems)


def _check_msrest(cls: Any, data: Any, where: str, problems: list[str]) -> None:
    """Deserialize with the model, then serialize with client-side validation on (the generated clients'
    ``_validation``: required, pattern, length rules) and compare what survived with what was sent."""
    module = sys.modules[cls.__module__]
    serialization = sys.modules[cls.__mro__[-2].__module__]  # the package's _serialization (Model's module)
    model = cls.deserialize(data)
    ser = serialization.Serializer({k: v for k, v in vars(module).items() if isinstance(v, type)})
    ser.client_side_validation = True
    try:
        kept = ser.body(model, cls.__name__)
    except Exception as exc:  # msrest SerializationError
        problems.append(f"{where}: {exc}")
        return
    _required(model, where, problems)
    _dropped(data, kept, where, problems)


def _required(obj: Any, where: str, problems: list[str]) -> None:
    """The generated model's ``_validation`` rules (required, pattern, lengths), recursively."""
    for attr, rules in (getattr(type(obj), "_validation", None) or {}).items():
        value = getattr(obj, attr, None)
        if rules.get("required") and value is None:
            problems.append(f"{where}.{attr}: required")
        if isinstance(value, str):
            if "pattern" in rules and not re.search(rules["pattern"], value):
                problems.append(f"{where}.{attr}: {value!r} does not match {rules['pattern']}")
            if "max_length" in rules and len(value) > rules["max_length"]:
                problems.append(f"{where}.{attr}: longer than {rules['max_length']}")
            if "min_length" in rules and len(value) < rules["min_length"]:
                problems.append(f"{where}.{attr}: shorter than {rules['min_length']}")
    for attr in getattr(type(obj), "_attribute_map", {}):
        value = getattr(obj, attr, None)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(type(item), "_attribute_map"):
                _required(item, f"{where}.{attr}", problems)


def _check_graph(cls: Any, raw: bytes, where: str, problems: list[str]) -> None:
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

    node = JsonParseNodeFactory().get_root_parse_node("application/json", raw)
    model = node.get_object_value(cls)

    def walk(obj: Any, at: str) -> None:
        extra = {k: v for k, v in (getattr(obj, "additional_data", None) or {}).items() if k != "@odata.type"}
        if extra:
            problems.append(f"{at}: not fields of {type(obj).__name__}: {sorted(extra)}")
        for name in getattr(obj, "__dataclass_fields__", {}):
            value = getattr(obj, name, None)
            if hasattr(value, "additional_data"):
                walk(value, f"{at}.{name}")

    walk(model, where)


def _ml(name: str):  # type: ignore[no-untyped-def]
    def check(req: Any, problems: list[str]) -> None:
        from azure.ai.ml._restclient.arm_ml_service import models

        _check_hybrid(getattr(models, name), req.json, name, problems)

    return check


def _role_assignment(req: Any, problems: list[str]) -> None:
    from azure.mgmt.authorization import AuthorizationManagementClient

    models = AuthorizationManagementClient.models(api_version=req.api_version)
    _check_msrest(models.RoleAssignmentCreateParameters, req.json, "RoleAssignmentCreateParameters", problems)
    if req.json["properties"].get("principalType") not in {"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}:
        problems.append(f"RoleAssignmentCreateParameters.properties.principalType: {req.json['properties'].get('principalType')!r}")


def _schedule_run(req: Any, problems: list[str]) -> None:
    from azure.mgmt.containerregistry.v2019_06_01_preview import models

    body = json.loads(json.dumps(req.json))
    if req.api_version == "2025-03-01-preview":
        recorded = json.loads(pick("azure-cli/test_acr_abac_build.excerpt.yaml", "POST", "/scheduleRun").request_body)
        if body.get("credentials") != recorded["credentials"]:
            problems.append(f"RunRequest.credentials: {body.get('credentials')!r}, az acr build sends {recorded['credentials']!r}")
        body.pop("credentials", None)  # not modelled by 2019-06-01-preview: checked against the recording above
    _check_msrest(models.RunRequest, body, "RunRequest", problems)
    os_ = body.get("platform", {}).get("os")
    if str(os_).lower() not in {e.value.lower() for e in models.OS}:  # ARM compares enum values case-insensitively
        problems.append(f"RunRequest.platform.os: {os_!r} not one of {[e.value for e in models.OS]}")


def _graph(module: str, name: str):  # type: ignore[no-untyped-def]
    def check(req: Any, problems: list[str]) -> None:
        cls = getattr(__import__(module, fromlist=[name]), name)
        _check_graph(cls, req.body, name, problems)

    return check


RULES: list[tuple[str, str, Any]] = [
    ("PUT", r"/onlineEndpoints/[^/]+$", _ml("OnlineEndpoint")),
    ("PUT", r"/onlineEndpoints/[^/]+/deployments/[^/]+$", _ml("OnlineDeployment")),
    ("PUT", r"/models/[^/]+/versions/[^/]+$", _ml("ModelVersion")),
    ("PUT", r"/codes/[^/]+/versions/[^/]+$", _ml("CodeVersion")),
    ("PUT", r"/environments/[^/]+/versions/[^/]+$", _ml("EnvironmentVersion")),
    ("POST", r"/datastores/[^/]+/listSecrets$", _ml("SecretExpiry")),
    ("POST", r"/onlineEndpoints/[^/]+/deployments/[^/]+/getLogs$", _ml("DeploymentLogsRequest")),
    ("PUT", r"/providers/Microsoft\.Authorization/roleAssignments/[^/]+$", _role_assignment),
    ("POST", r"/registries/[^/]+/scheduleRun$", _schedule_run),
    ("POST", r"^/v1\.0/applications$", _graph("msgraph.generated.models.application", "Application")),
    ("PATCH", r"^/v1\.0/applications.*", _graph("msgraph.generated.models.application", "Application")),
    ("POST", r"^/v1\.0/servicePrincipals$", _graph("msgraph.generated.models.service_principal", "ServicePrincipal")),
    ("POST", r"/addPassword$", _graph("msgraph.generated.applications.item.add_password.add_password_post_request_body", "AddPasswordPostRequestBody")),
    ("POST", r"/removePassword$", _graph("msgraph.generated.applications.item.remove_password.remove_password_post_request_body", "RemovePasswordPostRequestBody")),
]


def is_json(req: Any) -> bool:
    ctype = {k.lower(): v for k, v in req.headers.items()}.get("content-type", "")
    return "json" in ctype and bool(req.body)


def check(req: Any) -> None:
    """``AssertionError`` unless ``req``'s JSON body passes the rule for its method and path."""
    if not is_json(req):
        return
    rule = next((fn for method, pattern, fn in RULES if req.method == method and re.search(pattern, req.path)), None)
    if rule is None:
        raise AssertionError(f"{req.method} {req.path} sent a JSON body no validation rule covers: add one to validate.RULES")
    problems: list[str] = []
    rule(req, problems)
    if problems:
        raise AssertionError(f"{req.method} {req.path}: the body does not match the SDK's model:\n  " + "\n  ".join(problems))
