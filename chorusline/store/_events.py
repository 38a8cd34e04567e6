"""Append-only event logs: token usage per request and moderation decisions.

They carry plain ids without foreign keys: an event log must accept a record even for
a conversation deleted meanwhile, and billing must survive that deletion.
"""

from __future__ import annotations

from datetime import datetime

from chorusline.protocols import InvalidRequest
from chorusline.store._checks import check_limit, check_text
from chorusline.store._sql import Row, SqlStore
from chorusline.store.models import (
    ModerationEvent,
    ModerationStage,
    UsageEvent,
    UsageTotals,
)

_USAGE_COLUMNS = (
    "id, api_key_id, user_id, conversation_id, model, prompt_tokens, completion_tokens, "
    "ttft_ms, latency_ms, created, request_id, end_user"
)
_MODERATION_COLUMNS = "id, conversation_id, message_id, stage, category, action, detail, created"


class EventsMixin(SqlStore):
    def _usage_event(self, row: Row) -> UsageEvent:
        return UsageEvent(
            id=int(row["id"]),
            api_key_id=row["api_key_id"],
            user_id=row["user_id"],
            conversation_id=row["conversation_id"],
            model=row["model"],
            prompt_tokens=int(row["prompt_tokens"]),
            completion_tokens=int(row["completion_tokens"]),
            ttft_ms=row["ttft_ms"],
            latency_ms=row["latency_ms"],
            created=self._ts_out(row["created"]),
            request_id=row["request_id"],
            end_user=row["end_user"],
        )

    def _moderation_event(self, row: Row) -> ModerationEvent:
        return ModerationEvent(
            id=int(row["id"]),
            conversation_id=row["conversation_id"],
            message_id=row["message_id"],
            stage=ModerationStage(row["stage"]),
            category=row["category"],
            action=row["action"],
            detail=row["detail"],
            created=self._ts_out(row["created"]),
        )

    def _usage_filter(
        self,
        user_id: str | None,
        api_key_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[str, list[object]]:
        where, params = ["1 = 1"], list[object]()
        for column, value in (("user_id", user_id), ("api_key_id", api_key_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created >= ?")
            params.append(self._ts_in(since))
        if until is not None:
            where.append("created < ?")
            params.append(self._ts_in(until))
        return " AND ".join(where), params

    def record_usage(
        self,
        *,
        user_id: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        api_key_id: str | None = None,
        conversation_id: str | None = None,
        ttft_ms: float | None = None,
        latency_ms: float | None = None,
        request_id: str | None = None,
        end_user: str | None = None,
    ) -> UsageEvent:
        if min(prompt_tokens, completion_tokens) < 0:
            raise InvalidRequest("token counts must not be negative")
        _, now_db = self._now()
        with self._transaction() as tx:
            row = tx.fetchone(
                "INSERT INTO usage_events (api_key_id, user_id, conversation_id, model, "
                "prompt_tokens, completion_tokens, ttft_ms, latency_ms, created, request_id, "
                f"end_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_USAGE_COLUMNS}",
                (
                    api_key_id,
                    user_id,
                    conversation_id,
                    model,
                    prompt_tokens,
                    completion_tokens,
                    ttft_ms,
                    latency_ms,
                    now_db,
                    request_id,
                    end_user,
                ),
            )
        assert row is not None
        return self._usage_event(row)

    def list_usage(
        self,
        *,
        user_id: str | None = None,
        api_key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[UsageEvent]:
        check_limit(limit, maximum=10_000)
        where, params = self._usage_filter(user_id, api_key_id, since, until)
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                f"SELECT {_USAGE_COLUMNS} FROM usage_events WHERE {where} "
                "ORDER BY created DESC, id DESC LIMIT ?",
                [*params, limit],
            )
        return [self._usage_event(r) for r in rows]

    def usage_totals(
        self,
        *,
        user_id: str | None = None,
        api_key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        where, params = self._usage_filter(user_id, api_key_id, since, until)
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) AS n, COALESCE(SUM(prompt_tokens), 0) AS p, "
                f"COALESCE(SUM(completion_tokens), 0) AS c FROM usage_events WHERE {where}",
                params,
            )
        assert row is not None
        return UsageTotals(
            requests=int(row["n"]), prompt_tokens=int(row["p"]), completion_tokens=int(row["c"])
        )

    def record_moderation(
        self,
        *,
        stage: ModerationStage,
        category: str,
        action: str,
        conversation_id: str | None = None,
        message_id: str | None = None,
        detail: str | None = None,
    ) -> ModerationEvent:
        try:
            stage = ModerationStage(stage)
        except ValueError:
            raise InvalidRequest(f"unknown moderation stage {stage!r}", param="stage") from None
        check_text(category, "category", max_len=200, allow_empty=False)
        check_text(action, "action", max_len=200, allow_empty=False)
        _, now_db = self._now()
        with self._transaction() as tx:
            row = tx.fetchone(
                "INSERT INTO moderation_events (conversation_id, message_id, stage, category, "
                f"action, detail, created) VALUES (?, ?, ?, ?, ?, ?, ?) "
                f"RETURNING {_MODERATION_COLUMNS}",
                (conversation_id, message_id, stage.value, category, action, detail, now_db),
            )
        assert row is not None
        return self._moderation_event(row)

    def list_moderation(
        self,
        *,
        conversation_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[ModerationEvent]:
        check_limit(limit, maximum=10_000)
        where, params = ["1 = 1"], list[object]()
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if since is not None:
            where.append("created >= ?")
            params.append(self._ts_in(since))
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                f"SELECT {_MODERATION_COLUMNS} FROM moderation_events "
                f"WHERE {' AND '.join(where)} ORDER BY created DESC, id DESC LIMIT ?",
                [*params, limit],
            )
        return [self._moderation_event(r) for r in rows]
