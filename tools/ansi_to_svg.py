#!/usr/bin/env python3
"""ansi_to_svg: a terminal capture with colours (`tmux capture-pane -e -p`) as an SVG, for the
README's screenshot of `anetrain dash` (rasterize it with rsvg-convert).

    tmux capture-pane -e -p -t dash > pane.ansi
    python3 tools/ansi_to_svg.py pane.ansi COLS ROWS > dash.svg && rsvg-convert dash.svg -o dash.png

Understands what tmux emits for ncurses output: SGR 0 (reset), 1 (bold), 2 (dim), 22, 30-37 / 90-97
(foreground), 39 (default), 38;5;N (256 colours); other sequences are skipped.
"""
import re
import sys
from xml.sax.saxutils import escape

PALETTE = ["#1d1f21", "#cc6666", "#8cc04f", "#e0b84a", "#6a9fd8", "#b48ead", "#5fb3b3", "#c5c8c6",
           "#666666", "#ff7b7b", "#b5e36b", "#ffd76b", "#8fbfff", "#d6a6e6", "#7fdddd", "#ffffff"]
FG, BG = "#c5c8c6", "#1d1f21"
CW, CH = 8.4, 17  # cell size in px for 14 px DejaVu Sans Mono


def color256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (v, v, v)


def sgr(params, st):
    p = [int(x) if x else 0 for x in params.split(";")] if params else [0]
    i = 0
    while i < len(p):
        c = p[i]
        if c == 0:
            st.update(fg=None, bold=False, dim=False)
        elif c == 1:
            st["bold"] = True
        elif c == 2:
            st["dim"] = True
        elif c == 22:
            st.update(bold=False, dim=False)
        elif 30 <= c <= 37:
            st["fg"] = PALETTE[c - 30 + (8 if st["bold"] else 0)]
        elif 90 <= c <= 97:
            st["fg"] = PALETTE[c - 90 + 8]
        elif c == 39:
            st["fg"] = None
        elif c == 38 and i + 2 < len(p) and p[i + 1] == 5:
            st["fg"] = color256(p[i + 2])
            i += 2
        i += 1


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    cols, rows = int(sys.argv[2]), int(sys.argv[3])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="DejaVu Sans Mono" '
           'font-size="14" xml:space="preserve">' % (cols * CW + 16, rows * CH + 16),
           '<rect width="100%%" height="100%%" fill="%s"/>' % BG]
    st = {"fg": None, "bold": False, "dim": False}
    for y, line in enumerate(text.split("\n")[:rows]):
        x = 0
        for m in re.finditer(r"\x1b\[([0-9;]*)([A-Za-z])|([^\x1b]+)", line):
            if m.group(3) is None:
                if m.group(2) == "m":
                    sgr(m.group(1), st)
                continue
            run = m.group(3)
            if run.strip():
                fill = st["fg"] or FG
                attrs = ' font-weight="bold"' if st["bold"] else ""
                attrs += ' opacity="0.6"' if st["dim"] else ""
                # one <text> per cell: braille and box drawing must sit on the grid exactly
                for k, ch in enumerate(run):
                    if ch != " ":
                        out.append('<text x="%.1f" y="%.1f" fill="%s"%s>%s</text>' %
                                   (8 + (x + k) * CW, 8 + (y + 1) * CH - 4, fill, attrs, escape(ch)))
            x += len(run)
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
