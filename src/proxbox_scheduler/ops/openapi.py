"""The ops API described as OpenAPI 3.1, served at /openapi.json.

tests/integration/test_openapi.py validates real answers against it and
schemathesis fuzzes the server with it, so it stays true.
"""

from __future__ import annotations

from typing import Any

from proxbox_scheduler import __version__
from proxbox_scheduler.ops.control import Action
from proxbox_scheduler.ops.page_format import DURATION_PATTERN
from proxbox_scheduler.telemetry.status import TOP_LEVEL

TIME = {"type": ["string", "null"], "format": "date-time"}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
FIGURE = {"type": ["integer", "null"]}
OUTCOME = {"type": "string", "examples": ["success", "degraded", "failure", "skipped", "interrupted"]}

STAGE = {
    "type": "object",
    "required": ["stage", "index", "duration_s", "count", "created", "updated"],
    "properties": {
        "stage": {"type": ["string", "null"]},
        "index": FIGURE,
        "duration_s": {"type": ["number", "null"]},
        "count": FIGURE,
        "created": FIGURE,
        "updated": FIGURE,
    },
}
RUN = {
    "type": "object",
    "required": ["id", "start", "end", "duration_s", "outcome", "reason", "counts", "stages", "trigger"],
    "properties": {
        "id": {"type": "string"},
        "start": TIME,
        "end": TIME,
        "duration_s": {"type": ["number", "null"], "minimum": 0, "description": "null: interrupted"},
        "outcome": OUTCOME,
        "reason": {"type": "string"},
        "counts": COUNTS,
        "stages": {"type": "array", "items": {"$ref": "#/components/schemas/Stage"}},
        "trigger": {"type": "string", "examples": ["scheduled", "manual", "start", "catchup", "once"]},
    },
}
CURRENT = {
    "type": ["object", "null"],
    "required": ["id", "start", "trigger", "stage", "stage_index", "stages_total", "stages_done", "stages"],
    "properties": {
        "id": {"type": "string"},
        "start": TIME,
        "trigger": {"type": "string"},
        "stage": {"type": ["string", "null"]},
        "stage_index": FIGURE,
        "stages_total": FIGURE,
        "stages_done": {"type": "integer", "minimum": 0},
        "stages": {"type": "array", "items": {"$ref": "#/components/schemas/Stage"}},
    },
}
SKIP = {
    "type": "object",
    "required": ["at", "reason", "count"],
    "properties": {"at": TIME, "reason": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
}
JOB = {
    "type": "object",
    "required": [
        "name",
        "mode",
        "zone",
        "invoke",
        "target",
        "state",
        "next_fire",
        "current",
        "last_success",
        "consecutive_failures",
        "runs",
    ],
    "properties": {
        "name": {"type": "string"},
        "mode": {"type": "string"},
        "zone": {"type": "string"},
        "invoke": {"type": "string", "enum": ["http", "exec"]},
        "target": {"type": "string"},
        "state": {"type": "string", "examples": ["starting", "waiting", "running", "paused", "stopping"]},
        "paused": {"type": "boolean"},
        "next_fire": TIME,
        "current": {"$ref": "#/components/schemas/Current"},
        "last_success": TIME,
        "consecutive_failures": {"type": "integer", "minimum": 0},
        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
        "skips": {"type": "array", "items": {"$ref": "#/components/schemas/Skip"}},
    },
}
STATUS = {
    "type": "object",
    "required": ["version", *TOP_LEVEL, "current_run", "runs", "jobs"],
    "properties": {
        "version": {"type": "string"},
        **{key: JOB["properties"][key] for key in TOP_LEVEL},
        "current_run": {"$ref": "#/components/schemas/Current"},
        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
    },
}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
CONTROL_ANSWER = {
    "type": "object",
    "required": ["job", "action", "result"],
    "properties": {
        "job": {"type": "string"},
        "action": {"type": "string", "enum": [action.value for action in Action]},
        "result": {"type": "string"},
        "paused": {"type": "boolean"},
    },
}


def _json(schema: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def _get(summary: str, responses: dict[str, Any], parameters: list[Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _control(action: str, summary: str, ok: str) -> dict[str, Any]:
    conflict = {"409": _json("Error", "refused: a run is in progress or the scheduler is stopping")}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                ok: _json("ControlAnswer", f"{action} applied"),
                **(conflict if action == "run" else {}),
                "401": _json("Error", "token missing or wrong (the answer does not say which)"),
                "404": _json("Error", "no such job, or control is off"),
                "503": _json("Error", "the scheduler is stopping, did not answer, or the job is starting"),
            },
        }
    }


STATUS_OR_JOB = {
    "description": "all jobs (the first job's fields also at the top level); with ?job=NAME that job",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [{"$ref": "#/components/schemas/Status"}, {"$ref": "#/components/schemas/Job"}]
            }
        }
    },
}
WINDOW = _query(
    "window",
    "timeline window: seconds or 90m, 24h, 7d (kept within 1 min..31 d); default 24h",
    pattern=DURATION_PATTERN,
)
STALE = _query(
    "stale", "age of the last success past which it is highlighted, same syntax", pattern=DURATION_PATTERN
)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "proxbox-scheduler ops API", "version": __version__},
    "paths": {
        "/status": _get(
            "What every job is doing and has done",
            {"200": STATUS_OR_JOB, "404": _json("Error", "no such job")},
            [_query("job", "one job's view")],
        ),
        "/jobs/{name}/run": _control("run", "Run the job now, by the same rules as a scheduled run", "202"),
        "/jobs/{name}/pause": _control("pause", "Skip the job's fires (counted as paused)", "200"),
        "/jobs/{name}/resume": _control("resume", "Follow the schedule again", "200"),
        "/livez": _get("Alive", {"200": _text("alive"), "503": _text("the loop is wedged")}),
        "/readyz": _get("Scheduling", {"200": _text("ready"), "503": _text("not ready")}),
        "/metrics": _get("Prometheus metrics", {"200": _text("text exposition format")}),
        "/": _get(
            "The console page",
            {"200": _text("the page", "text/html"), "400": _text("a bad window or stale value")},
            [WINDOW, STALE],
        ),
        "/page.js": _get("The page's script", {"200": _text("script", "text/javascript")}),
        "/openapi.json": _get(
            "This document", {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Status": STATUS,
            "Job": JOB,
            "Run": RUN,
            "Stage": STAGE,
            "Current": CURRENT,
            "Skip": SKIP,
            "Error": ERROR,
            "ControlAnswer": CONTROL_ANSWER,
        },
    },
}
