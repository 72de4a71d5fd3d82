"""Export of an explored state graph (``explore(..., keep_graph=True).graph``).

DOT is written by hand so that no Graphviz binding is needed; GraphML goes through networkx.
Nodes are state digests (attributes ``depth`` and, on the initial state, ``init``); edges
carry the action ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Any, path: str | Path) -> None:
    """Write ``graph`` as a Graphviz digraph; the initial state is drawn with a double border."""
    lines = [f"digraph {_quote(graph.graph.get('name') or 'states')} {{", "  node [shape=box];"]
    for node, data in graph.nodes(data=True):
        depth = data.get("depth", "?")
        attrs = [f"label={_quote(f'{node} (depth {depth})')}"]
        if data.get("init"):
            attrs.append("peripheries=2")
        lines.append(f"  {_quote(node)} [{', '.join(attrs)}];")
    for src, dst, data in graph.edges(data=True):
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(data.get('label', ''))}];")
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def to_graphml(graph: Any, path: str | Path) -> None:
    """Write ``graph`` as GraphML (readable by networkx.read_graphml, Gephi, yEd)."""
    import networkx as nx

    nx.write_graphml(graph, str(path))
