"""MkDocs hook: `<!-- include: PATH -->` on a line of its own becomes PATH's text
as a code block (PATH relative to the checkout).

The configuration page shows config/motionwatch.yaml itself instead of a copy
that would drift from it; MkDocs has no include without a downloaded plugin.
"""

import re
from pathlib import Path

MARKER = re.compile(r"^<!-- include: (\S+) -->$", re.M)


def on_page_markdown(markdown, page, config, files):
    root = Path(config.config_file_path).parent

    def include(m):
        path = root / m.group(1)
        lang = {".yaml": "yaml", ".yml": "yaml", ".service": "ini"}.get(path.suffix, "")
        return f"```{lang}\n{path.read_text().rstrip()}\n```"

    return MARKER.sub(include, markdown)
