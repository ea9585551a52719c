"""One real editor's built-in LSP client, headless: Neovim starts `trainlint lsp`, opens a file,
and must show trainlint's diagnostic. Skipped (with the reason) where Neovim is not installed;
.ci/run installs it from Debian's packages."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = r"""
local file, python, out = os.getenv("TL_FILE"), os.getenv("TL_PYTHON"), os.getenv("TL_OUT")
vim.cmd("edit " .. file)
local client = vim.lsp.start_client({
  name = "trainlint", cmd = { python, "-m", "trainlint", "lsp" }, root_dir = vim.fn.fnamemodify(file, ":h"),
})
vim.lsp.buf_attach_client(0, client)
vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 100)
local lines = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  table.insert(lines, string.format("%s|%d|%d|%s", d.source or "", d.lnum, d.col, d.message))
end
vim.fn.writefile(lines, out)
vim.cmd("qa!")
"""


def test_neovim_shows_the_diagnostic(tmp_path):
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("Neovim is not installed here (apt-get install neovim); the real-editor test needs it")
    source = tmp_path / "train.py"
    source.write_text(textwrap.dedent("""\
        for i, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
        """))
    script = tmp_path / "client.lua"
    script.write_text(SCRIPT)
    out = tmp_path / "diagnostics.txt"
    env = dict(os.environ, TL_FILE=str(source), TL_PYTHON=sys.executable, TL_OUT=str(out),
               TRAINLINT_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path))
    subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {script}"], env=env,
                   timeout=60, capture_output=True)
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    source_name, line, column, message = lines[0].split("|", 3)
    assert (source_name, line, column) == ("trainlint", "1", "4")
    assert message.startswith("zero_grad() here runs every micro-batch")
