"""The language server end to end, as an editor speaks to it: a client process exchanges
JSON-RPC messages with `trainlint lsp` over stdio."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

BUGGY = textwrap.dedent("""\
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        loss = criterion(model(x), y) / accum
        loss.backward()
        if (i + 1) % accum == 0:
            optimizer.step()
    """)
FIXED = BUGGY.replace("    optimizer.zero_grad()\n", "").replace(
    "        optimizer.step()\n", "        optimizer.step()\n        optimizer.zero_grad()\n")


class Client:
    def __init__(self, cwd):
        env = dict(os.environ, TRAINLINT_CACHE_DIR=str(cwd / "cache"))
        self.process = subprocess.Popen([sys.executable, "-m", "trainlint", "lsp"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, cwd=cwd, env=env)
        self.next_id = 0
        self.received = []

    def send(self, payload):
        body = json.dumps(payload).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.process.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id)

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def read(self):
        length = None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise EOFError("server closed its output")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.process.stdout.read(length))

    def wait(self, predicate, timeout=20):
        for message in self.received:
            if predicate(message):
                self.received.remove(message)
                return message
        deadline = time.time() + timeout
        while time.time() < deadline:
            message = self.read()
            if predicate(message):
                return message
            self.received.append(message)
        raise TimeoutError("no matching message")

    def diagnostics(self, uri):
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri)["params"]["diagnostics"]


@pytest.fixture
def client(tmp_path):
    client = Client(tmp_path)
    reply = client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    capabilities = reply["result"]["capabilities"]
    assert capabilities["codeActionProvider"] and capabilities["textDocumentSync"]
    client.notify("initialized", {})
    yield client
    client.request("shutdown", None)
    client.notify("exit", None)
    client.process.wait(timeout=10)


def test_diagnostics_on_open_change_and_code_actions(client, tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BUGGY)
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": BUGGY}})
    [diagnostic] = client.diagnostics(uri)
    assert diagnostic["code"] == "TL201" and diagnostic["severity"] == 1 and diagnostic["source"] == "trainlint"
    assert diagnostic["range"]["start"] == {"line": 1, "character": 4}
    assert diagnostic["codeDescription"]["href"].endswith("/docs/rules/TL201.md")

    reply = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostic["range"], "context": {"diagnostics": [diagnostic]}})
    [suppress] = [a for a in reply["result"] if a["title"] == "Suppress TL201 on this line"]
    [edit] = suppress["edit"]["changes"][uri]
    assert edit["newText"] == "    optimizer.zero_grad()  # noqa: TL201"
    [move] = [a for a in reply["result"] if a["title"].startswith("Fix (unsafe) TL201: move zero_grad()")]
    assert not move.get("isPreferred")
    [edit] = move["edit"]["changes"][uri]
    lines = BUGGY.splitlines(keepends=True)
    start, end = edit["range"]["start"]["line"], edit["range"]["end"]["line"]
    assert "".join(lines[:start]) + edit["newText"] + "".join(lines[end:]) == FIXED

    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": FIXED}]})
    assert client.diagnostics(uri) == []
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri) == []


def test_safe_fix_code_action_and_config(client, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trainlint]\nignore = ["TL2"]\n')
    source = "for images, labels in train_loader:\n    images.cuda()\n    optimizer.step()\n"
    path = tmp_path / "pkg" / "train.py"
    path.parent.mkdir()
    path.write_text(source)
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": source}})
    [diagnostic] = client.diagnostics(uri)  # TL203 is ignored by the project's configuration
    assert diagnostic["code"] == "TL702"
    reply = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostic["range"], "context": {"diagnostics": [diagnostic]}})
    [fix] = [a for a in reply["result"] if a["title"].startswith("Fix TL702")]
    assert fix["edit"]["changes"][uri][0]["newText"] == "images = images"


def test_notebook_document(client, tmp_path):
    notebook_uri = (tmp_path / "train.ipynb").as_uri()
    cells = [f"{notebook_uri}#cell1", f"{notebook_uri}#cell2"]
    client.notify("notebookDocument/didOpen", {
        "notebookDocument": {"uri": notebook_uri, "notebookType": "jupyter-notebook", "version": 1,
                             "cells": [{"kind": 2, "document": cells[0]}, {"kind": 2, "document": cells[1]}]},
        "cellTextDocuments": [
            {"uri": cells[0], "languageId": "python", "version": 1, "text": "%matplotlib inline\nimport torch\n"},
            {"uri": cells[1], "languageId": "python", "version": 1, "text": BUGGY},
        ]})
    assert client.diagnostics(cells[0]) == []
    [diagnostic] = client.diagnostics(cells[1])
    assert diagnostic["code"] == "TL201" and diagnostic["range"]["start"]["line"] == 1


def test_malformed_input_is_answered_and_the_server_keeps_serving(client, tmp_path):
    """Garbage an editor (or a broken plugin) can send: the server answers with errors where
    JSON-RPC says to, and the next well-formed request still gets its answer."""
    opened = []

    def still_serving():
        opened.append(tmp_path / f"after{len(opened)}.py")
        uri = opened[-1].as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python",
                                                                "version": 1, "text": BUGGY}})
        assert [d["code"] for d in client.diagnostics(uri)] == ["TL201"]
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    body = b'{"jsonrpc": "2.0", "id": 99, "method": "textDocument/hover", "params": '  # cut short
    client.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    client.process.stdin.flush()
    still_serving()

    reply = client.request("no/suchMethod", {})
    assert reply["error"]["code"] == -32601  # method not found
    still_serving()

    # a request whose params do not fit the method's schema
    reply = client.request("textDocument/codeAction", {"textDocument": 5})
    assert "error" in reply
    still_serving()

    # an edit far outside the document, then a document of 20,000 lines
    uri = (tmp_path / "edited.py").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": BUGGY}})
    client.diagnostics(uri)
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 500, "character": 3}, "end": {"line": 900, "character": 0}}, "text": "x"}]})
    still_serving()
    huge = BUGGY + "x = 1\n" * 20000
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                             "contentChanges": [{"text": huge}]})
    assert [d["code"] for d in client.diagnostics(uri)] == ["TL201"]
    still_serving()


def test_content_length_larger_than_the_body(tmp_path):
    """A header that promises more bytes than come: the server waits for them (it cannot know
    where the message ends), and what it then reads as one message is not valid JSON; it says
    so and goes on serving the messages after it."""
    client = Client(tmp_path)
    client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    body = b'{"jsonrpc": "2.0", "method": "initialized", "params": {}}'
    client.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body) + 40, body))
    client.process.stdin.write(b" " * 40)  # the missing bytes arrive: the message is whole again
    client.process.stdin.flush()
    reply = client.request("shutdown", None)
    assert "result" in reply
    client.notify("exit", None)
    assert client.process.wait(timeout=10) == 0
