"""`trainlint lsp`: a language server over stdio (pygls). Diagnostics on open, change (debounced)
and save; code actions for fixes (unsafe ones say so in their title) and for suppressing a finding on its line; notebooks
(notebookDocument/*) linted as one module with diagnostics published per cell. Each document is
linted alone with the settings of the pyproject.toml above it."""
from __future__ import annotations

import asyncio
import os
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from . import __version__
from .analysis import lint_file, module_of, suppression_codes
from .config import ConfigError, find_pyproject, load
from .engine import settings_for
from .reporters import lsp_diagnostic
from .semantics.summaries import RecordingIndex

DEBOUNCE_SECONDS = 0.3


def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


class AnsweringProtocol(LanguageServerProtocol):
    """pygls drops a request it cannot deserialize (params that do not fit the method's schema),
    and the editor would wait for its answer forever: answer it with the JSON-RPC error."""

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=types.ResponseError(error.code, error.message))
            raise


class TrainlintServer(LanguageServer):
    def __init__(self):
        super().__init__(
            "trainlint", __version__, protocol_cls=AnsweringProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(notebook_selector=[
                types.NotebookDocumentFilterWithCells(
                    cells=[types.NotebookCellLanguage(language="python")], notebook="jupyter-notebook")]),
        )
        self.pending: Dict[str, asyncio.TimerHandle] = {}
        self.settings_cache: Dict[Optional[str], object] = {}

    def settings_for_path(self, path: str):
        pyproject = find_pyproject(path) if os.path.isabs(path) else None
        if pyproject not in self.settings_cache:
            try:
                self.settings_cache[pyproject] = settings_for(load(pyproject))
            except ConfigError as error:
                self.window_show_message(types.ShowMessageParams(types.MessageType.Error, f"trainlint: {error}"))
                self.settings_cache[pyproject] = settings_for(load(None))
        return self.settings_cache[pyproject]

    def findings(self, path: str, source: str) -> List[dict]:
        settings = self.settings_for_path(path)
        module = module_of(path) if os.path.isabs(path) else (os.path.splitext(os.path.basename(path))[0], "")
        result = lint_file(source.encode("utf-8"), path, module, settings, RecordingIndex())
        return result["findings"]

    def lint_text_document(self, uri: str) -> None:
        document = self.workspace.get_text_document(uri)
        findings = self.findings(path_of(uri), document.source)
        self.publish(uri, findings, document.version)

    def lint_notebook(self, notebook_uri: str) -> None:
        """Lint the notebook's code cells as one module; publish each cell's diagnostics."""
        import json

        notebook = self.workspace.get_notebook_document(notebook_uri=notebook_uri)
        if notebook is None:
            return
        cell_uris = [cell.document for cell in notebook.cells if cell.kind == types.NotebookCellKind.Code]
        cells = [{"cell_type": "code", "source": self.workspace.get_text_document(uri).source} for uri in cell_uris]
        data = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        findings = self.findings(path_of(notebook_uri), data) if cells else []
        for number, uri in enumerate(cell_uris, 1):
            self.publish(uri, [f for f in findings if f.get("cell") == number], None)

    def publish(self, uri: str, findings: List[dict], version: Optional[int]) -> None:
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[to_diagnostic(f) for f in findings if f["code"] != "TL000"]))

    def debounce(self, key: str, action) -> None:
        loop = asyncio.get_event_loop()
        if key in self.pending:
            self.pending[key].cancel()
        self.pending[key] = loop.call_later(DEBOUNCE_SECONDS, action)


def to_diagnostic(finding: dict) -> types.Diagnostic:
    data = lsp_diagnostic(finding)
    start, end = data["range"]["start"], data["range"]["end"]
    return types.Diagnostic(
        range=types.Range(types.Position(start["line"], start["character"]), types.Position(end["line"], end["character"])),
        severity=types.DiagnosticSeverity(data["severity"]), code=data["code"],
        code_description=types.CodeDescription(href=data["codeDescription"]["href"]), source="trainlint",
        message=data["message"], data=data["data"],
    )


def code_actions(uri: str, lines: List[str], diagnostics: List[types.Diagnostic]) -> List[types.CodeAction]:
    actions = []
    for diagnostic in diagnostics:
        if diagnostic.source != "trainlint":
            continue
        fix = (diagnostic.data or {}).get("fix") if isinstance(diagnostic.data, dict) else None
        if fix:
            edits = [types.TextEdit(types.Range(types.Position(e["line"] - 1, e["column"] - 1),
                                                types.Position(e["end_line"] - 1, e["end_column"] - 1)), e["content"])
                     for e in fix["edits"]]
            # an unsafe fix changes when code runs: offered, never preferred, and it says so
            label = "Fix" if fix.get("safe") else "Fix (unsafe)"
            actions.append(types.CodeAction(
                title=f"{label} {diagnostic.code}: {fix['message']}", kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic], is_preferred=bool(fix.get("safe")),
                edit=types.WorkspaceEdit(changes={uri: edits})))
        line = diagnostic.range.start.line
        text = lines[line] if line < len(lines) else ""
        insertion, column = suppression_edit(text.rstrip("\r\n"), str(diagnostic.code))
        actions.append(types.CodeAction(
            title=f"Suppress {diagnostic.code} on this line", kind=types.CodeActionKind.QuickFix,
            diagnostics=[diagnostic], edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(
                types.Range(types.Position(line, column), types.Position(line, len(text.rstrip("\r\n")))),
                insertion)]})))
    return actions


def suppression_edit(line: str, code: str) -> Tuple[str, int]:
    """(new text, column it starts at): `  # noqa: CODE` appended, or CODE added to the line's
    existing `# noqa: ...` list."""
    codes = suppression_codes(line)
    if codes and "# noqa:" in line:
        start = line.index("# noqa:")
        return f"# noqa: {', '.join(sorted(codes | {code}))}", start
    return f"{line}  # noqa: {code}" if line.strip() else f"# noqa: {code}", 0


def serve() -> None:
    server = TrainlintServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TrainlintServer, params: types.DidOpenTextDocumentParams):
        ls.lint_text_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TrainlintServer, params: types.DidChangeTextDocumentParams):
        uri = params.text_document.uri
        ls.debounce(uri, lambda: ls.lint_text_document(uri))

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TrainlintServer, params: types.DidSaveTextDocumentParams):
        ls.lint_text_document(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TrainlintServer, params: types.DidCloseTextDocumentParams):
        ls.publish(params.text_document.uri, [], None)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: TrainlintServer, params: types.DidOpenNotebookDocumentParams):
        ls.lint_notebook(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: TrainlintServer, params: types.DidChangeNotebookDocumentParams):
        uri = params.notebook_document.uri
        ls.debounce(uri, lambda: ls.lint_notebook(uri))

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_save(ls: TrainlintServer, params: types.DidSaveNotebookDocumentParams):
        ls.lint_notebook(params.notebook_document.uri)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: TrainlintServer, params: types.CodeActionParams):
        document = ls.workspace.get_text_document(params.text_document.uri)
        return code_actions(params.text_document.uri, document.lines, params.context.diagnostics)

    server.start_io()
