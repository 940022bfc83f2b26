"""A Python client for a running room: queries, prices, budget, history, downloads, uploads.

For partner data teams in notebooks, and for the command line's HTTP calls:
connect with the room's URL and a token, then ask. Results come back as
:class:`Result` (the answer as the API sent it, and a pandas DataFrame with one
line per released number: value, 95% error bound, interval and flags), and
refusals as the exceptions of :mod:`cleanroom.client.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from cleanroom.accuracy import RESULT_ENVELOPE
from cleanroom.client.errors import from_answer
from cleanroom.errors import T_, UserError
from cleanroom.results import tidy

if TYPE_CHECKING:
    import pandas as pd

CHUNK = 1024 * 1024
FORMATS = ("json", "csv", "parquet", "xlsx")


def checked_url(url: str) -> str:
    """The room's base URL; a URL without its scheme is refused with how to write it."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            T_(
                "room URL '%(url)s' has no http:// or https:// in front; write it in "
                "full, e.g. https://%(value)s",
                url=url[:80],
                value=url.split("://")[-1][:60] or "room.example",
            )
        )
    return url


def readable(epsilon: object) -> float:
    """An epsilon as people read it: the split parts' sum shown as 0.2, not 0.19999999999999998."""
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool):
        return 0.0
    return float(f"{epsilon:.12g}")


@dataclass(frozen=True)
class Result:
    """A released answer: the API's JSON and the facts a reader must keep with the numbers."""

    raw: dict[str, Any]

    @property
    def query_id(self) -> str:
        """The id to re-open or download the answer later."""
        return str(self.raw.get("query_id", ""))

    @property
    def epsilon(self) -> float:
        """Epsilon this answer cost (0 when it came from the cache)."""
        return 0.0 if self.cached else readable(self.raw.get("epsilon_float"))

    @property
    def cached(self) -> bool:
        """Whether the room answered from its cache, at no cost."""
        return bool(self.raw.get("cached"))

    @property
    def policy_version(self) -> int | None:
        """The policy version the query ran under."""
        version = self.raw.get("policy_version")
        return int(version) if version is not None else None

    @property
    def df(self) -> pd.DataFrame:
        """One line per released number (see :mod:`cleanroom.results`); facts in ``df.attrs``."""
        import pandas as pd

        columns, records = tidy(self.raw)
        frame = pd.DataFrame.from_records(records, columns=columns)
        frame.attrs.update(
            query_id=self.query_id,
            epsilon=self.epsilon,
            cached=self.cached,
            policy_version=self.policy_version,
            rules=self.rules,
        )
        return frame

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The rules that withheld or narrowed cells of this answer (rule id, cells, sentence)."""
        return [dict(r) for r in self.raw.get("rules") or []]

    def extras(self) -> dict[str, Any]:
        """A template's derived figures beside the table (pairwise rates, lift difference…)."""
        return {k: v for k, v in self.raw.items() if k not in RESULT_ENVELOPE}

    def _repr_html_(self) -> str:
        """Jupyter shows the table with its bounds."""
        html: str = self.df._repr_html_()
        return html


class Client:
    """One room, one token."""

    def __init__(
        self, url: str, token: str, *, timeout: float = 30.0, language: str | None = None
    ) -> None:
        self.url = checked_url(url)
        headers = {"Authorization": f"Bearer {token}"}
        if language:  # the room writes its messages in it (codes and details never change)
            headers["Accept-Language"] = language
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=None),
        )

    def close(self) -> None:
        """Drop the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; an error answer raises the exception for its code."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise UserError(
                T_(
                    "cannot reach the room at %(url)s (%(name)s)",
                    url=self.url,
                    name=type(err).__name__,
                )
            ) from None
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            raise from_answer(response.status_code, body)
        return response

    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[bytes]:
        """A binary answer piece by piece (a backup archive); an error answer raises."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = None
                    raise from_answer(response.status_code, body)
                yield from response.iter_bytes()  # as it arrives: a slow archive still moves
        except httpx.HTTPError as err:
            raise UserError(
                T_(
                    "the room at %(url)s stopped answering (%(name)s)",
                    url=self.url,
                    name=type(err).__name__,
                )
            ) from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request whose answer is JSON."""
        return self.send(method, path, **kwargs).json()

    # -- the analyst's calls -------------------------------------------------

    def me(self) -> dict[str, Any]:
        """Who the token is: name, role, party."""
        found: dict[str, Any] = self.call("GET", "/api/v1/me")
        return found

    def query(
        self,
        sql: str | None = None,
        *,
        template: str | None = None,
        params: dict[str, str] | None = None,
        epsilon: float | None = None,
    ) -> Result:
        """Run restricted SQL or a template; the answer costs its epsilon (a cached one, 0)."""
        return Result(
            self.call("POST", "/api/v1/queries", json=_body(sql, template, params, epsilon))
        )

    def price(
        self,
        sql: str | None = None,
        *,
        template: str | None = None,
        params: dict[str, str] | None = None,
        epsilon: float | None = None,
    ) -> dict[str, Any]:
        """A dry run: the cost, the budget left, about how many such queries, expected errors."""
        body = {**_body(sql, template, params, epsilon), "dry_run": True}
        found: dict[str, Any] = self.call("POST", "/api/v1/queries", json=body)
        return found

    def result(self, query_id: str) -> Result:
        """Re-open a past answer of one's party."""
        return Result(self.call("GET", f"/api/v1/queries/{quote(query_id, safe='')}"))

    def download(self, query_id: str, fmt: str) -> bytes:
        """A past answer as a file: json, csv, parquet or xlsx (bounds and flags as columns)."""
        if fmt not in FORMATS:
            raise UserError(
                T_(
                    "unknown format '%(fmt)s'; use one of %(formats)s",
                    fmt=fmt[:20],
                    formats=", ".join(FORMATS),
                )
            )
        path = f"/api/v1/queries/{quote(query_id, safe='')}"
        return self.send("GET", path, params={"format": fmt}).content

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """One's party's queries, newest first."""
        found: list[dict[str, Any]] = self.call("GET", "/api/v1/queries", params={"limit": limit})
        return found

    def history_frame(self, limit: int = 50) -> pd.DataFrame:
        """The history as a DataFrame."""
        import pandas as pd

        return pd.DataFrame.from_records(self.history(limit))

    def budget(self) -> list[dict[str, Any]]:
        """The budget this period: share, spent and left, per visible party."""
        found: list[dict[str, Any]] = self.call("GET", "/api/v1/budget")["parties"]
        return found

    def datasets(self) -> list[dict[str, Any]]:
        """The live datasets: who sent what, when."""
        found: list[dict[str, Any]] = self.call("GET", "/api/v1/datasets")
        return found

    def upload(
        self, bundle: str | Path, *, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """Send a sealed bundle (party admins); the dataset version once it is live."""
        path = Path(bundle)
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, size)
                    yield chunk

        found: dict[str, Any] = self.call("POST", "/api/v1/datasets", content=chunks())
        return found


def _body(
    sql: str | None, template: str | None, params: dict[str, str] | None, epsilon: float | None
) -> dict[str, Any]:
    if (sql is None) == (template is None):
        raise UserError(T_("give sql or template (with params), not both"))
    return {"sql": sql, "template": template, "params": params or {}, "epsilon": epsilon}
