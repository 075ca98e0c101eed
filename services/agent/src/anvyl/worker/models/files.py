"""`POST /files/*`: read, write, list, search, delete, move."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from anvyl.worker.models.common import MAX_READ_BYTES, MAX_WRITE_BYTES, StrictModel


class FileReadRequest(StrictModel):
    path: str = Field(min_length=1)
    start_line: int | None = Field(default=None, ge=1, description="first line, 1-based")
    end_line: int | None = Field(default=None, ge=1, description="last line, inclusive")
    max_bytes: int = Field(default=2 * 1024 * 1024, gt=0, le=MAX_READ_BYTES)

    @model_validator(mode="after")
    def _range_ok(self) -> FileReadRequest:
        if self.start_line and self.end_line and self.end_line < self.start_line:
            raise ValueError("end_line must not be before start_line")
        return self


class FileContent(BaseModel):
    path: str  # relative to the workspace
    size: int
    binary: bool
    encoding: Literal["utf-8", "base64"]
    content: str
    truncated: bool = False
    start_line: int | None = None
    end_line: int | None = None  # last line actually returned
    total_lines: int | None = None  # known when the read reached the end of the file


class FileWriteRequest(StrictModel):
    path: str = Field(min_length=1)
    content: str = Field(max_length=MAX_WRITE_BYTES * 2)
    encoding: Literal["utf-8", "base64"] = "utf-8"
    create_parents: bool = True
    overwrite: bool = True
    mode: int | None = Field(default=None, ge=0, le=0o777)


class FileWriteResult(BaseModel):
    path: str
    size: int
    created: bool


class FileListRequest(StrictModel):
    path: str = "."
    glob: str | None = Field(default=None, max_length=1000)
    depth: int = Field(default=1, ge=1, le=64, description="1: direct children only")
    include_git: bool = False
    include_hidden: bool = True
    max_entries: int = Field(default=2000, gt=0, le=50_000)


class FileEntry(BaseModel):
    path: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int | None = None


class FileList(BaseModel):
    path: str
    entries: list[FileEntry]
    truncated: bool = False


class SearchRequest(StrictModel):
    pattern: str = Field(min_length=1, max_length=1000)
    path: str = "."
    glob: str | None = Field(default=None, max_length=1000)
    case_insensitive: bool = False
    max_results: int = Field(default=200, gt=0, le=5000)
    max_file_bytes: int = Field(default=2 * 1024 * 1024, gt=0, le=MAX_READ_BYTES)
    include_git: bool = False
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class SearchMatch(BaseModel):
    path: str
    line: int
    text: str


class SearchResult(BaseModel):
    matches: list[SearchMatch]
    truncated: bool = False
    timed_out: bool = False
    files_scanned: int = 0


class FileDeleteRequest(StrictModel):
    path: str = Field(min_length=1)
    recursive: bool = False
    missing_ok: bool = False


class FileDeleteResult(BaseModel):
    path: str
    deleted: bool


class FileMoveRequest(StrictModel):
    src: str = Field(min_length=1)
    dst: str = Field(min_length=1)
    overwrite: bool = False
    create_parents: bool = True


class FileMoveResult(BaseModel):
    src: str
    dst: str
