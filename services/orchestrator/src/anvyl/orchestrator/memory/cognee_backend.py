"""The cognee memory backend (the orchestrator's `cognee` extra, an environment of its own: see the
README): cognee's pipeline (chunks, a knowledge graph and
summaries built by the chat model, vectors from the embeddings endpoint), pointed at the local
OpenAI-compatible chat model and `/v1/embeddings` instead of OpenAI, so no cloud key is needed.

One cognee dataset per owner: a workspace's tasks, an agent's tasks, an archive. Each item carries
a short header (task or archive, path, lines) that search reads back, so a hit names its source.

Offline: cognee counts tokens with the embedding model's HuggingFace tokenizer, else tiktoken's
encoding (both downloaded on first use). For the WordLlama model that gpt-oss serves, its tokenizer
(shipped in the wordllama wheel) is laid out as a local HuggingFace cache with offline mode on.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.memory.records import ARCHIVE, TASK, Hit, Scope, Snippet, TaskMemory
from anvyl.orchestrator.settings import Settings

log = get_logger(__name__)
WORDLLAMA = "wordllama-l2-supercat"
_HEADER = re.compile(r"\A\[anvyl (?P<kind>task|archive)\]\n(?P<fields>(?:[a-z_]+: .*\n)*)\n", re.M)


class CogneeUnavailable(RuntimeError):
    """The extra is not installed, or the endpoints it needs are not configured."""


def _dataset(kind: str, key: str) -> str:
    return f"anvyl_{kind}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _header(kind: str, fields: dict[str, Any]) -> str:
    lines = "".join(
        f"{k}: {' '.join(str(v).split())}\n" for k, v in fields.items() if v is not None
    )
    return f"[anvyl {kind}]\n{lines}\n"


def parse(text: str, score: float) -> Hit | None:
    """A stored item back into a hit (None for text not stored by Anvyl)."""
    match = _HEADER.match(text)
    if match is None:
        return None
    fields = dict(line.split(": ", 1) for line in match["fields"].splitlines())
    body = text[match.end() :]
    if match["kind"] == TASK:
        return Hit(kind="task", text=body, score=score, task_id=fields.get("task"),
                   workspace_id=fields.get("workspace"), agent=fields.get("agent"))  # fmt: skip
    start, _, end = fields.get("lines", "0-0").partition("-")
    return Hit(kind="archive", text=body, score=score, archive=fields.get("archive"),
               path=fields.get("path"), line_start=int(start or 0), line_end=int(end or 0))  # fmt: skip


def offline_tokenizer_cache(root: Path) -> Path:
    """A HuggingFace cache holding WordLlama's tokenizer under the model's name."""
    import wordllama

    source = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    repo = root / f"models--{WORDLLAMA}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / "local").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("local")
    shutil.copyfile(source, repo / "snapshots" / "local" / "tokenizer.json")
    return root


class CogneeMemory:
    name = "cognee"

    def __init__(self, root: Path, *, llm_url: str, llm_model: str, llm_api_key: str | None,
                 embeddings_url: str, embeddings_model: str, dimensions: int = 256) -> None:  # fmt: skip
        self.root = root
        self._llm = {"llm_provider": "custom", "llm_endpoint": llm_url,
                     "llm_model": f"openai/{llm_model}", "llm_api_key": llm_api_key or "local"}  # fmt: skip
        self._embedding = {"embedding_provider": "openai_compatible",
                           "embedding_endpoint": embeddings_url, "embedding_model": embeddings_model,
                           "embedding_dimensions": dimensions, "embedding_api_key": "local"}  # fmt: skip
        self._cognee: Any = None
        self._lock = asyncio.Lock()  # cognee's pipelines are run one at a time here
        self._files_path = (
            root / "files.json"
        )  # (archive, path) -> cognee data ids, for forget_file

    @classmethod
    def from_settings(cls, settings: Settings) -> CogneeMemory:
        if not settings.embeddings_url or not settings.memory_llm_url:
            raise CogneeUnavailable("the cognee backend needs ANVYL_EMBEDDINGS_URL and "
                                    "ANVYL_MEMORY_LLM_URL (an OpenAI-compatible chat model)")  # fmt: skip
        if importlib.util.find_spec("cognee") is None:  # said at start-up, not at the first task
            raise CogneeUnavailable("ANVYL_MEMORY_BACKEND=cognee: cognee is not installed "
                                    "(the `cognee` extra: see the README)")  # fmt: skip
        key = (
            settings.memory_llm_api_key.get_secret_value() if settings.memory_llm_api_key else None
        )
        return cls(settings.data_dir / "cognee", llm_url=settings.memory_llm_url,
                   llm_model=settings.memory_llm_model, llm_api_key=key,
                   embeddings_url=settings.embeddings_url, embeddings_model=settings.embeddings_model)  # fmt: skip

    async def _ready(self) -> Any:
        if self._cognee is not None:
            return self._cognee
        # Before cognee (and huggingface_hub) are imported: both read these once.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download
        os.environ.setdefault("TELEMETRY_DISABLED", "1")
        if self._embedding["embedding_model"] == WORDLLAMA:
            cache = await asyncio.to_thread(offline_tokenizer_cache, self.root / "hf")
            os.environ["HF_HUB_CACHE"] = str(cache)
            os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import cognee
        except ImportError as exc:
            raise CogneeUnavailable("cognee is not installed: install the orchestrator's "
                                    "`cognee` extra (see the README)") from exc  # fmt: skip
        cognee.config.system_root_directory(str(self.root / "system"))
        cognee.config.data_root_directory(str(self.root / "data"))
        cognee.config.set_llm_config(self._llm)
        cognee.config.set_embedding_config(self._embedding)
        self._cognee = cognee
        return cognee

    async def _add(self, texts: list[str], dataset: str) -> list[str]:
        """Add and cognify; the data ids in the order of `texts`."""
        cognee = await self._ready()
        async with self._lock:
            added = await cognee.add(texts, dataset_name=dataset)
            await cognee.cognify(datasets=[dataset])
        return [str(info["data_id"]) for info in (added.data_ingestion_info or [])]

    async def remember_task(self, memory: TaskMemory) -> None:
        owner = (
            ("agent", memory.agent) if memory.agent else ("workspace", memory.workspace_id or "")
        )
        header = _header(TASK, {"task": memory.task_id, "workspace": memory.workspace_id,
                                "agent": memory.agent})  # fmt: skip
        await self._add([header + memory.text], _dataset(*owner))

    async def add_files(self, archive: str, files: dict[str, list[Snippet]]) -> int:
        for path in files:
            await self.forget_file(archive, path)
        texts, owners = [], []
        for path, snippets in files.items():
            for s in snippets:
                texts.append(_header(ARCHIVE, {"archive": archive, "path": path,
                                               "lines": f"{s.line_start}-{s.line_end}"}) + s.text)  # fmt: skip
                owners.append(path)
        if not texts:
            return 0
        ids = await self._add(texts, _dataset("archive", archive))
        known = self._files()
        for path, data_id in zip(owners, ids, strict=False):
            known.setdefault(f"{archive}\0{path}", []).append(data_id)
        self._save_files(known)
        return len(texts)

    async def forget_file(self, archive: str, path: str) -> int:
        known = self._files()
        ids = known.pop(f"{archive}\0{path}", [])
        if not ids:
            return 0
        cognee = await self._ready()
        dataset_id = await self._dataset_id(_dataset("archive", archive))
        if dataset_id is not None:
            from uuid import UUID

            async with self._lock:
                for data_id in ids:
                    await cognee.datasets.delete_data(dataset_id=dataset_id, data_id=UUID(data_id))
        self._save_files(known)
        return len(ids)

    async def search(
        self,
        query: str,
        *,
        scope: Scope = "all",
        workspace_id: str | None = None,
        agent: str | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        cognee = await self._ready()
        names = {d.name for d in await cognee.datasets.list_datasets()}
        wanted = set()
        if scope in ("all", "tasks"):
            owners = [("workspace", workspace_id), ("agent", agent)]
            if workspace_id is None and agent is None:
                wanted |= {n for n in names if n.startswith(("anvyl_workspace_", "anvyl_agent_"))}
            wanted |= {_dataset(kind, key) for kind, key in owners if key is not None}
        if scope in ("all", "archives"):
            wanted |= {n for n in names if n.startswith("anvyl_archive_")}
        datasets = sorted(wanted & names)
        if not datasets or not query.strip():
            return []
        from cognee import SearchType

        results = await cognee.search(query_text=query, query_type=SearchType.CHUNKS,
                                      datasets=datasets, top_k=limit)  # fmt: skip
        hits = []
        for result in results:
            for chunk in result.get("search_result", []) if isinstance(result, dict) else []:
                hit = parse(str(chunk.get("text", "")), float(chunk.get("score") or 0.0))
                if hit is not None:
                    hits.append(hit)
        # cognee's score is a distance: smaller is nearer. Anvyl's is higher-is-better.
        hits.sort(key=lambda h: h.score)
        return [h.model_copy(update={"score": round(1 - h.score, 6)}) for h in hits[:limit]]

    async def forget(
        self, *, workspace_id: str | None = None, agent: str | None = None,
        archive: str | None = None,
    ) -> int:  # fmt: skip
        if workspace_id is None and agent is None and archive is None:
            raise ValueError("name a workspace, an agent or an archive to forget")
        cognee = await self._ready()
        removed = 0
        for kind, key in (("workspace", workspace_id), ("agent", agent), ("archive", archive)):
            if key is None or (dataset_id := await self._dataset_id(_dataset(kind, key))) is None:
                continue
            async with self._lock:
                removed += len(await cognee.datasets.list_data(dataset_id))
                await cognee.datasets.empty_dataset(dataset_id)
        if archive is not None:
            self._save_files(
                {k: v for k, v in self._files().items() if not k.startswith(f"{archive}\0")}
            )
        return removed

    async def _dataset_id(self, name: str) -> Any:
        cognee = await self._ready()
        return next((d.id for d in await cognee.datasets.list_datasets() if d.name == name), None)

    def _files(self) -> dict[str, list[str]]:
        try:
            found: dict[str, list[str]] = json.loads(self._files_path.read_text())
        except (OSError, ValueError):
            return {}
        return found

    def _save_files(self, known: dict[str, list[str]]) -> None:
        self._files_path.parent.mkdir(parents=True, exist_ok=True)
        self._files_path.write_text(json.dumps(known))

    async def close(self) -> None:
        return None
