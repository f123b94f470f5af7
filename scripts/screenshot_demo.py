"""Screenshot of the demo's live view for the README: tmux capture (with ANSI colours) to PNG.

    python scripts/screenshot_demo.py --out docs/img/demo-live.png --wait 60 -- --rate 200

Runs ``shopstream demo <args>`` in a detached tmux session, waits, captures the pane with
``tmux capture-pane -e``, stops the demo with Ctrl-C (it drains the services and stops the
broker), and draws the live view (from its title line down) with Pillow in DejaVu Sans Mono.
Needs tmux, Pillow and the DejaVu fonts (``apt-get install tmux fonts-dejavu-core``).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.style import Style
from rich.terminal_theme import MONOKAI, TerminalTheme
from rich.text import Text

REPO = Path(__file__).resolve().parents[1]
FONTS = Path("/usr/share/fonts/truetype/dejavu")
SESSION = "shopstream-screenshot"
TITLE = "shopstream demo —"
"""The live view's table title (the start-up line ``shopstream demo: logs in`` must not match)."""


def capture(demo_args: list[str], wait_s: float, width: int, height: int) -> str:
    """The pane's text with escape sequences, ``wait_s`` seconds after the demo's live view appears."""
    command = f"cd {REPO} && PYTHONPATH={REPO} {sys.executable} -m tools.cli.main demo {' '.join(demo_args)}"
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", str(width), "-y", str(height),
                    f"{command}; sleep 120"], check=True)
    try:
        deadline = time.monotonic() + 600
        while TITLE not in _pane(plain=True) and time.monotonic() < deadline:
            time.sleep(2)
        time.sleep(wait_s)
        return _pane(plain=False)
    finally:
        subprocess.run(["tmux", "send-keys", "-t", SESSION, "C-c"], check=False)
        time.sleep(30)  # the demo drains its services and stops the broker
        subprocess.run(["tmux", "kill-session", "-t", SESSION], check=False)


def _pane(plain: bool) -> str:
    args = ["tmux", "capture-pane", "-p", "-t", SESSION] + ([] if plain else ["-e"])
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def live_view(screen: str) -> list[str]:
    """The lines from the view's last title down, without trailing blank lines."""
    lines = screen.splitlines()
    start = max((i for i, line in enumerate(lines) if TITLE in line), default=0)
    view = lines[start:]
    while view and not Text.from_ansi(view[-1]).plain.strip():
        view.pop()
    return view


def render(lines: list[str], out: Path, theme: TerminalTheme = MONOKAI, size: int = 15) -> None:
    regular = ImageFont.truetype(str(FONTS / "DejaVuSansMono.ttf"), size)
    bold = ImageFont.truetype(str(FONTS / "DejaVuSansMono-Bold.ttf"), size)
    ascent, descent = regular.getmetrics()
    # one glyph box per row, as a terminal does, so box-drawing lines join up without gaps
    cell_w, cell_h, pad = regular.getlength("M"), ascent + descent, 16
    texts = [Text.from_ansi(line) for line in lines]
    columns = max(len(t.plain) for t in texts)
    image = Image.new("RGB", (round(columns * cell_w) + 2 * pad, len(texts) * cell_h + 2 * pad),
                      theme.background_color.rgb)
    draw = ImageDraw.Draw(image)
    console = Console(file=io.StringIO(), width=columns + 10, color_system="truecolor")
    for row, text in enumerate(texts):
        col = 0
        for segment in text.render(console):
            style = segment.style or Style()
            colour = style.color.get_truecolor(theme).rgb if style.color else theme.foreground_color.rgb
            font = bold if style.bold else regular
            for char in segment.text:
                draw.text((pad + col * cell_w, pad + row * cell_h), char, font=font, fill=colour)
                col += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "demo-live.png")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds of live view before the capture")
    parser.add_argument("--width", type=int, default=150)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("demo_args", nargs="*", help="arguments for shopstream demo (after --)")
    args = parser.parse_args()
    screen = capture(args.demo_args, args.wait, args.width, args.height)
    Path("/tmp/demo-live.ansi").write_text(screen)  # for debugging the rendering
    render(live_view(screen), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
