"""The query console: restricted SQL and template forms, answered with bounds, a chart and the cost.

The console is a client of the same engine as ``POST /api/v1/queries``, with
the request checked by the API's own body model (its size limits). What the
page adds is what a person needs to ask well and read the answer right:

- the tables and columns the policy opens to the analyst's party, each with
  its role (dimension values, metric bounds), beside the SQL editor;
- a form per template the analyst may run, built from the template's
  declared parameters (:mod:`cleanroom.room.analyses.schema`);
- every released number with its 95% error bound, and a chart with error
  bars; the epsilon spent and whether the answer came from the cache;
- a refusal shown as the rule broken and why; an exhausted budget as the
  amount left and when it resets.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cleanroom.accuracy import RESULT_ENVELOPE
from cleanroom.errors import T_, DataExpired, UserError
from cleanroom.i18n import N_
from cleanroom.room.analyses import TEMPLATES
from cleanroom.room.analyses.activity import activity_sources
from cleanroom.room.analyses.schema import SCHEMAS, Param
from cleanroom.room.auth import User
from cleanroom.room.budget import BudgetExceeded
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.http.bodies import QueryBody
from cleanroom.room.http.deps import EngineDep, RoomDep
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.spending import spending
from cleanroom.room.state import Room
from cleanroom.room.web import result_chart
from cleanroom.room.web.deps import page, posted
from cleanroom.room.web.forms import Form
from cleanroom.room.web.render import language_for, party_names
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Asker = Annotated[Session, Depends(page("console"))]
Submitted = Annotated[Form, Depends(posted("console"))]

SHOWN_DOMAIN_VALUES = 8
NOTHING_SENT: dict[str, Any] = {
    "sql": None,
    "template": None,
    "params": {},
    "epsilon": "",
    "dry_run": False,
}


@dataclass(frozen=True)
class Column:
    """A column an analyst may use, and how."""

    name: str
    type: str
    role: str
    detail: str
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Table:
    """A table open to the analyst's party."""

    name: str
    own: bool
    columns: list[Column]


@dataclass(frozen=True)
class Input:
    """One form input for a template parameter."""

    param: Param
    input_type: str
    options: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TemplateForm:
    """The form of one template the analyst may run."""

    name: str
    summary: str
    inputs: list[Input]


def party_of(user: User) -> str:
    """The party a console user asks for (reporters ask as the reporter share)."""
    return user.party or "reporter"


def open_tables(policy: CollaborationPolicy, party: str) -> list[Table]:
    """The tables and columns the policy opens to ``party``'s analysts (none to others)."""
    spec = policy.parties.get(party)
    if spec is None:
        return []
    access = spec.analysts
    tables = []
    # The party's own tables first: with join_required every query starts from one.
    for owner, owner_spec in sorted(policy.parties.items(), key=lambda p: (p[0] != party, p[0])):
        for name, contract in sorted(owner_spec.datasets.items()):
            table = f"{owner}.{name}"
            if not access.may_read(table):
                continue
            columns = [Column("person", "person", "join key", "")]
            for column, rule in contract.columns.items():
                if not access.may_use(table, column):
                    continue
                if rule.domain is not None:  # values as declared; bounds are shown by the page
                    values = ", ".join(str(v) for v in rule.domain[:SHOWN_DOMAIN_VALUES])
                    more = len(rule.domain) - SHOWN_DOMAIN_VALUES
                    detail = values + (f" … (+{more})" if more > 0 else "")
                else:
                    detail = ""
                columns.append(Column(column, str(rule.type), rule.role, detail, rule.bounds))
            tables.append(Table(table, owner == party, columns))
    return tables


def _suggestions(policy: CollaborationPolicy, party: str) -> tuple[list[str], list[str], list[str]]:
    """Brands with activity open to the party, step spellings, and campaign tables."""
    brands, steps = [], []
    for brand in sorted(policy.parties):
        sources = activity_sources(policy, party, brand)
        if sources:
            brands.append(brand)
            steps.append(brand)
            steps.extend(f"{brand}.{s.dataset}" for s in sources)
    campaigns = [
        f"{owner}.{name}"
        for owner, spec in sorted(policy.parties.items())
        for name, contract in sorted(spec.datasets.items())
        if not contract.activity and contract.time is not None
    ]
    return brands, steps, campaigns


def template_forms(policy: CollaborationPolicy, party: str) -> list[TemplateForm]:
    """A form per template that is enabled and open to the party, from its declared schema."""
    access = policy.parties[party].analysts if party in policy.parties else None
    brands, steps, campaigns = _suggestions(policy, party)
    forms = []
    for name, prepare in TEMPLATES.items():
        approved = policy.templates.get(name)
        if approved is None or not approved.enabled:  # as the engine: approved ones only
            continue
        if access is not None and not access.may_run(name):
            continue
        module_doc = (sys.modules[prepare.__module__].__doc__ or "").strip()
        summary = module_doc.splitlines()[0].split(": ", 1)[-1] if module_doc else ""
        inputs = []
        for param in SCHEMAS.get(name, ()):
            if param.kind == "brands":
                inputs.append(Input(param, "checkboxes", options=brands))
            elif param.kind in ("step", "steps"):
                inputs.append(Input(param, "text", suggestions=steps))
            elif param.kind == "table":
                inputs.append(Input(param, "text", suggestions=campaigns))
            elif param.kind == "integer":
                inputs.append(Input(param, "number"))
            elif param.kind in ("date", "month"):
                inputs.append(Input(param, param.kind))
            else:
                inputs.append(Input(param, "text"))
        forms.append(TemplateForm(name, summary, inputs))
    return forms


def _budget_line(room: Room, user: User, engine: Engine) -> dict[str, Any] | None:
    try:
        rows: list[dict[str, Any]] = spending(room, user, engine.ledger)
    except UserError:
        return None
    mine = [r for r in rows if r["party"] == party_of(user)]
    return mine[0] if mine else None


def _context(room: Room, engine: Engine, user: User, **extra: Any) -> dict[str, Any]:
    policy = room.active_policy().policy
    party = party_of(user)
    privacy = policy.privacy
    spec = policy.parties.get(party)
    return {
        "title": N_("Query console"),
        "party": party,
        "tables": open_tables(policy, party),
        "free_sql": spec is not None and spec.analysts.free_sql,
        "join_required": spec is not None and spec.analysts.join_required,
        "templates": template_forms(policy, party),
        "privacy": privacy,
        "budget": _budget_line(room, user, engine),
        "result": None,
        "chart": None,
        "extras": {},
        "refusal": None,
        "reopened": None,
        "downloads": ("csv", "xlsx", "parquet", "json"),
        **extra,
        "sent": {**NOTHING_SENT, **extra.get("sent", {})},
    }


@router.get("/console")
def console(request: Request, room: RoomDep, engine: EngineDep, session: Asker) -> Response:
    """The SQL editor and the template forms."""
    return render(request, "console.html", _context(room, engine, session.user))


def _sent(form: Form) -> dict[str, Any]:
    """The posted form as the page fills it in again: the query, its parameters, epsilon."""
    template = form.get("template").strip() or None
    params: dict[str, str] = {}
    if template is not None:
        for name, values in form.prefixed("p.").items():
            kept = [v.strip() for v in values if v.strip()]
            if kept:
                params[name] = ",".join(kept)  # checkboxes: one comma-separated list
    return {
        "template": template,
        "sql": None if template else form.get("sql"),
        "params": params,
        "epsilon": form.get("epsilon").strip(),
        "dry_run": form.get("action") == "price",
    }


def _request(sent: dict[str, Any]) -> QueryRequest:
    """The engine's request, checked by the API's own body model (the same limits)."""
    try:
        epsilon = float(sent["epsilon"]) if sent["epsilon"] else None
    except ValueError:
        raise UserError(
            T_("epsilon must be a number, not '%(sent)s'", sent=sent["epsilon"][:20])
        ) from None
    try:
        body = QueryBody(
            sql=sent["sql"],
            template=sent["template"],
            params=sent["params"],
            epsilon=epsilon,
            dry_run=sent["dry_run"],
        )
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise UserError(problems) from None
    return QueryRequest(
        sql=body.sql,
        template=body.template,
        params=body.params,
        epsilon=Epsilon.parse(body.epsilon) if body.epsilon is not None else None,
        dry_run=body.dry_run,
    )


def _refusal(err: UserError) -> tuple[dict[str, Any], int]:
    if isinstance(err, QueryRejected):
        return {"kind": "rejected", "rule": err.rule, "message": err}, err.status
    if isinstance(err, DataExpired):
        return {
            "kind": "expired",
            "generation": err.generation,
            "expired_at": err.expired_at,
            "message": err,
        }, err.status
    if isinstance(err, BudgetExceeded):
        return {
            "kind": "budget",
            "message": err,
            "party": err.party,
            "left": float(err.left),
            "asked": float(err.asked),
            "resets_at": err.resets_at.isoformat(timespec="seconds"),
        }, err.status
    return {"kind": "error", "message": err}, err.status


@router.post("/console")
async def run(
    request: Request, room: RoomDep, engine: EngineDep, session: Asker, form: Submitted
) -> Response:
    """Run (or price) the posted query; the answer, or the refusal, on the console page."""
    user = session.user
    sent = _sent(form)
    try:
        result = await run_in_threadpool(engine.run, _request(sent), user)
    except UserError as err:
        refusal, status = _refusal(err)
        context = _context(room, engine, user, sent=sent, refusal=refusal)
        return render(request, "console.html", context, status=status)
    language = language_for(request)
    chart = await run_in_threadpool(
        result_chart.chart, result, language, party_names(request, language)
    )
    if result.get("dry_run"):
        extras = {k: v for k, v in result.items() if k != "dry_run"}
    else:
        extras = {k: v for k, v in result.items() if k not in RESULT_ENVELOPE}
    context = _context(room, engine, user, sent=sent, result=result, chart=chart, extras=extras)
    return render(request, "console.html", context)
