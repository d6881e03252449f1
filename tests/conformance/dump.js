// Feed byte streams to xterm.js (headless) and print each resulting screen as JSON.
//
// stdin: a JSON array of cases, each {"cols": n, "rows": n, "data": "<base64 bytes>"}.
// stdout: a JSON array, one screen per case: {"buffer": "normal"|"alternate",
// "cursor": [x, y], "cursorHidden": bool, "lines": [[cell, ...], ...]} where a cell is
// [chars, width, fg, bg, flags]. Colours: -1 default, 0..255 palette, 0x1000000|rgb truecolor
// (the Python emulator's encoding). Flags: the emulator's bits (bold 1, dim 2, italic 4,
// underline 8, blink 16, reverse 32, conceal 64, strike 128, overline 256).
"use strict";
const { Terminal } = require("@xterm/headless");
const { Unicode11Addon } = require("@xterm/addon-unicode11");

const CM_P16 = 0x1000000, CM_P256 = 0x2000000, CM_RGB = 0x3000000;

function colour(mode, value) {
  if (mode === CM_P16 || mode === CM_P256) return value;
  if (mode === CM_RGB) return 0x1000000 | value;
  return -1;
}

function flags(cell) {
  return (cell.isBold() ? 1 : 0) | (cell.isDim() ? 2 : 0) | (cell.isItalic() ? 4 : 0) |
    (cell.isUnderline() ? 8 : 0) | (cell.isBlink() ? 16 : 0) | (cell.isInverse() ? 32 : 0) |
    (cell.isInvisible() ? 64 : 0) | (cell.isStrikethrough() ? 128 : 0) |
    (cell.isOverline() ? 256 : 0);
}

function dump(term) {
  const buf = term.buffer.active;
  const lines = [];
  let cell;
  for (let y = 0; y < term.rows; y++) {
    const line = buf.getLine(buf.baseY + y);
    const row = [];
    for (let x = 0; x < term.cols; x++) {
      cell = line.getCell(x, cell);
      row.push([cell.getChars(), cell.getWidth(),
        colour(cell.getFgColorMode(), cell.getFgColor()),
        colour(cell.getBgColorMode(), cell.getBgColor()), flags(cell)]);
    }
    lines.push(row);
  }
  return {
    buffer: buf.type,
    cursor: [buf.cursorX, buf.cursorY],
    cursorHidden: Boolean(term._core.coreService.isCursorHidden),
    lines,
  };
}

async function run(c) {
  const term = new Terminal({ cols: c.cols, rows: c.rows, allowProposedApi: true,
    scrollback: 0, convertEol: false });
  // Unicode 11 widths: the closest xterm.js has to glibc's wcwidth (Unicode 14 in glibc 2.36).
  term.loadAddon(new Unicode11Addon());
  term.unicode.activeVersion = "11";
  await new Promise((resolve) => term.write(Buffer.from(c.data, "base64"), resolve));
  const screen = dump(term);
  term.dispose();
  return screen;
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const out = [];
  for (const c of cases) out.push(await run(c));
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { console.error(err); process.exit(1); });
