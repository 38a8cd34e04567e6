"""What ``chorusline top`` draws: rich renderables built from the latest feed state.

``render`` lays a ``Screen`` (chorusline.top.screen) out for printing once, at its
natural height, and ``layout`` fills a terminal for the live view, where each part has a
region and a part taller than its region is cropped rather than pushing the others off
the screen.

Every string that comes from the feed (actor names, paths, tenant ids, failure messages)
goes into a ``Text`` object through ``format.plain``/``format.clean``, never through
rich's markup parser: an actor named ``[bold red]x[/]`` shows as those characters, as the
console page shows names with ``textContent``, and an escape sequence shows as ``\\x1b``
rather than reaching the terminal. Payload fields are read with ``.get``: a static
supervisor's child between incarnations comes with no statistics, the GPU worker's figures
are null while it restarts, and a newer server may add or drop figures without breaking
the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from chorusline.top.format import (
    MISSING,
    as_float,
    as_int,
    clean,
    clock,
    duration,
    is_number,
    mapping,
    number,
    plain,
    short_id,
    summary,
)
from chorusline.top.screen import Screen

#: A node with more children than this shows the busiest and "… N more".
CHILDREN_SHOWN = 20
REQUESTS_SHOWN = 8  # in the live layout; ``render`` lists them all

STATE_STYLES = {"running": "green", "starting": "cyan", "stopping": "yellow",
                "restarting": "bold yellow", "dead": "bold red"}
REQUEST_STYLES = {"accepted": "dim", "queued": "yellow", "prefill": "cyan", "decode": "green",
                  "streaming": "blue", "finished": "dim"}
EVENT_STYLES = {"actor_crashed": "bold red", "actor_killed": "red", "escalated": "bold red",
                "restart": "yellow", "fault_injected": "magenta", "fault_cleared": "magenta",
                "rate_limited": "yellow", "overloaded": "yellow",
                "moderation_blocked": "magenta", "preempted": "cyan", "requeued": "cyan",
                "request_aborted": "yellow", "actor_passivated": "dim"}
CONNECTION_STYLES = {"live": "bold green", "connecting": "cyan"}
REQUEST_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("request", "left"), ("tenant", "left"), ("tier", "left"), ("state", "left"),
    ("prompt", "right"), ("gen", "right"), ("age", "right"), ("TTFT", "right"))


def render(screen: Screen) -> RenderableType:
    """The whole view at its natural height, for printing once (``--once``)."""
    return Group(header(screen), tree_panel(screen), engine_panel(screen),
                 requests_panel(screen, limit=None), events_panel(screen))


def layout(screen: Screen) -> Layout:
    """The whole view fitted to a terminal, for the live display."""
    shown = len(_requests(screen))
    rows = min(shown, REQUESTS_SHOWN) + (shown > REQUESTS_SHOWN)
    root = Layout()
    root.split_column(
        Layout(header(screen), size=3),
        Layout(name="main"),
        # border and column headings, then a row each; "no requests": border and a line
        Layout(requests_panel(screen, limit=REQUESTS_SHOWN), size=3 + rows if rows else 3),
    )
    side = Layout(ratio=2)
    side.split_column(Layout(engine_panel(screen), size=14), Layout(events_panel(screen)))
    root["main"].split_row(Layout(tree_panel(screen), ratio=3), side)
    return root


# -- header ------------------------------------------------------------------------------

def header(screen: Screen) -> Panel:
    hello = screen.hello or {}
    snapshot = screen.snapshot or {}
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append("chorusline top", style="bold")
    # The connection first: when the feed is lost, why must not be cut off at the end.
    line.append("  ")
    style = CONNECTION_STYLES.get(screen.connection, "bold yellow")
    line.append(f"● {clean(screen.connection)}", style=style)
    _field(line, "", screen.server)
    if hello.get("system"):
        _field(line, "system ", hello["system"])
    pid = snapshot.get("worker_pid", hello.get("worker_pid"))
    _field(line, "pid ", MISSING if pid is None else pid)
    if hello.get("model"):
        _field(line, "model ", hello["model"])
    if is_number(snapshot.get("time")):
        _field(line, "", clock(snapshot["time"]))
    faults = mapping(snapshot.get("faults"))
    if faults:
        line.append(f"  {len(faults)} fault{'s' if len(faults) != 1 else ''} injected",
                    style="magenta")
    dead = as_int(mapping(snapshot.get("dead_letters")).get("count"))
    if dead:
        line.append(f"  {dead} dead letters", style="yellow")
    if screen.skipped:
        line.append(f"  {screen.skipped} feed messages skipped (slow client)", style="yellow")
    return Panel(line, padding=(0, 1))


def _field(line: Text, label: str, value: object) -> None:
    line.append("  │  ", style="dim")
    line.append(label, style="dim")
    line.append(clean(value))


# -- supervision tree --------------------------------------------------------------------

def tree_panel(screen: Screen) -> Panel:
    snapshot = screen.snapshot or {}
    root = snapshot.get("tree")
    body: RenderableType
    if isinstance(root, Mapping):
        body = tree_view(root, mapping(snapshot.get("faults")))
    else:
        body = Text("waiting for the first snapshot…", style="dim")
    return Panel(body, title="supervision tree", title_align="left")


def tree_view(root: Mapping[str, Any], faults: Mapping[str, Any] | None = None) -> Tree:
    """The supervision tree; a node with more than CHILDREN_SHOWN children shows its
    busiest ones and "… N more" (N counts the ones the server left out, too)."""
    tree = Tree(node_label(root, faults), guide_style="dim")
    _add_children(tree, root, faults or {})
    return tree


def _add_children(branch: Tree, node: Mapping[str, Any], faults: Mapping[str, Any]) -> None:
    sent = node.get("children")
    children = [c for c in sent if isinstance(c, Mapping)] if isinstance(sent, list) else []
    received = len(children)
    total = max(as_int(node.get("children_total")), received)
    if received > CHILDREN_SHOWN:
        children = sorted(children, key=_busyness, reverse=True)[:CHILDREN_SHOWN]
    for child in children:
        _add_children(branch.add(node_label(child, faults)), child, faults)
    if total > len(children):
        more = Text(f"… {total - len(children)} more", style="dim italic")
        if total > received and received:
            more.append(f" ({total} children in all; the server sent the busiest "
                        f"{received})")
        branch.add(more)


def _busyness(node: Mapping[str, Any]) -> tuple[int, int, int]:
    """The server's own order for pruning: mailbox depth, then failures, then restarts."""
    return (as_int(node.get("mailbox_depth")), as_int(node.get("failed")),
            as_int(node.get("restarts")))


def node_label(node: Mapping[str, Any], faults: Mapping[str, Any] | None = None) -> Text:
    """One line: name, kind, state and the statistics the node has."""
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(clean(node.get("name") or node.get("path") or "?"), style="bold")
    if node.get("kind"):
        label.append(f" {clean(node['kind'])}", style="dim")
    state = clean(node.get("state") or "?")
    label.append(" ")
    label.append(state, style=STATE_STYLES.get(state, ""))
    depth, capacity = node.get("mailbox_depth"), node.get("mailbox_capacity")
    if depth is not None:
        label.append(f"  mbox {clean(depth)}/{'∞' if capacity is None else clean(capacity)}",
                     style="bold yellow" if as_int(depth) else "")
    for key, word, busy in (("processed", "proc", ""), ("failed", "fail", "red"),
                            ("restarts", "restarts", "bold yellow")):
        if node.get(key) is not None:
            label.append(f"  {word} {clean(node[key])}",
                         style=busy if as_int(node[key]) else "")
    if is_number(node.get("children_total")):
        label.append(f"  children {node['children_total']}", style="cyan")
    path = node.get("path")
    if faults and isinstance(path, str) and path in faults:
        label.append(f"  fault: {summary(faults[path])}", style="magenta")
    failure = node.get("last_failure")
    if isinstance(failure, Mapping) and (as_int(node.get("failed")) or state != "running"):
        label.append(f"  last: {clean(failure.get('type', '?'))}: "
                     f"{clean(failure.get('message', ''))}", style="dim red")
    return label


# -- engine ------------------------------------------------------------------------------

def engine_panel(screen: Screen) -> Panel:
    engine = (screen.snapshot or {}).get("engine")
    if not isinstance(engine, Mapping):
        return Panel(Text("no engine figures yet", style="dim"), title="engine",
                     title_align="left")
    driver, gpu = mapping(engine.get("driver")), engine.get("engine")
    rates, ttft = mapping(engine.get("rates")), mapping(engine.get("ttft_ms"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_row("output tok/s", number(rates.get("output_tps"), ".1f"))
    grid.add_row("prompt tok/s", number(rates.get("prompt_tps"), ".1f"))
    grid.add_row("steps/s", number(rates.get("steps_per_s"), ".1f"))
    grid.add_row("queue depth", number(driver.get("queue_depth")))
    grid.add_row("in flight", number(driver.get("inflight")))
    grid.add_row("batch size", Text.assemble(
        number(driver.get("last_batch_size")), " (mean ",
        number(driver.get("mean_batch_size"), ".1f"), ", max ",
        number(driver.get("max_batch_size")), ")"))
    grid.add_row("TTFT p50/p95", Text.assemble(
        number(ttft.get("p50"), ".0f"), " / ", number(ttft.get("p95"), ".0f"), " ms (",
        number(ttft.get("count")), " turns/60 s)"))
    if isinstance(gpu, Mapping):
        grid.add_row("running", number(gpu.get("num_running")))
        grid.add_row("waiting", number(gpu.get("num_waiting")))
        grid.add_row("KV use", _kv_use(gpu))
        grid.add_row("step ms", number(gpu.get("last_step_ms"), ".1f"))
        grid.add_row("preemptions", number(gpu.get("preemptions")))
    else:
        grid.add_row("GPU worker", Text("restarting", style="bold yellow"))
    return Panel(grid, title="engine", title_align="left")


def _kv_use(gpu: Mapping[str, Any]) -> Text:
    usage = gpu.get("kv_usage")
    used, total = as_int(gpu.get("kv_blocks_used")), as_int(gpu.get("kv_blocks_total"))
    if not is_number(usage) and total:
        usage = used / total
    if not is_number(usage):
        return number(None)
    text = Text(f"{usage * 100:.1f}%", style="bold red" if usage >= 0.9 else "")
    if total:
        text.append(f" ({used}/{total} blocks)", style="dim")
    return text


# -- requests ----------------------------------------------------------------------------

def _requests(screen: Screen) -> list[Mapping[str, Any]]:
    requests = (screen.snapshot or {}).get("requests")
    return [r for r in requests if isinstance(r, Mapping)] if isinstance(requests, list) \
        else []


def requests_panel(screen: Screen, *, limit: int | None) -> Panel:
    """The in-flight requests, oldest first; ``limit`` rows at most, then "… N more"."""
    requests = sorted(_requests(screen), key=lambda r: -as_float(r.get("age_ms")))
    if not requests:
        return Panel(Text("no requests in flight", style="dim"), title="requests",
                     title_align="left")
    table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
    for name, justify in REQUEST_COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis",
                         header_style="bold dim")
    shown = requests if limit is None else requests[:limit]
    for request in shown:
        state = clean(request.get("state") or "?")
        table.add_row(
            Text(short_id(clean(request.get("request_id") or "?"))),
            plain(request.get("tenant") or MISSING),
            plain(request.get("tier") or MISSING),
            Text(state, style=REQUEST_STYLES.get(state, "")),
            number(request.get("prompt_tokens")),
            number(request.get("generated_tokens")),
            duration(request.get("age_ms")),
            duration(request.get("ttft_ms")),
        )
    if len(shown) < len(requests):
        table.add_row(Text(f"… {len(requests) - len(shown)} more", style="dim italic"))
    return Panel(table, title=f"requests in flight ({len(requests)})", title_align="left")


# -- events ------------------------------------------------------------------------------

def events_panel(screen: Screen) -> Panel:
    if not screen.events:
        return Panel(Text("no events yet", style="dim"), title="events", title_align="left")
    table = Table(box=None, padding=(0, 1), show_header=False, expand=True, show_edge=False)
    table.add_column("time", no_wrap=True, style="dim")
    table.add_column("kind", no_wrap=True)
    table.add_column("path", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("detail", no_wrap=True, overflow="ellipsis", ratio=3, style="dim")
    for event in screen.events:
        kind = clean(event.get("kind") or "?")
        when = event.get("time")
        table.add_row(
            Text(clock(when, millis=True) if is_number(when) else MISSING),
            Text(kind, style=EVENT_STYLES.get(kind, "")),
            plain(event.get("path") or ""),
            Text(summary(event.get("detail") or {})),
        )
    return Panel(table, title="events", title_align="left")
