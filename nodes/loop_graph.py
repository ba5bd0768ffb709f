"""The wired chunk loop's graph work: which nodes form the body between Loop Start and Loop End,
a signature of what the loop computes (for the run folder's fingerprint), and the expansion that
runs the body once more (ComfyUI node expansion, as its own while-loop test nodes do).

Works on the API-format prompt (``{id: {"class_type", "inputs"}}``, a link is ``[id, slot]``) through
a ``get_node(id)`` function and the list of node ids, so it is tested without ComfyUI.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

LOOP_START, LOOP_NEXT, LOOP_END = "WorldWarpLoopStart", "WorldWarpLoopNext", "WorldWarpLoopEnd"
NAMES = {LOOP_START: "WorldWarp Loop Start", LOOP_NEXT: "WorldWarp Loop Next", LOOP_END: "WorldWarp Loop End"}
# the input ``mark_graphs`` gives each Loop Start in a queued prompt: a digest of its loop's graph,
# so an edit of the body changes Loop Start's cache key and Loop Start runs (and checks) again
GRAPH_INPUT = "worldwarp_graph"
# Loop Start inputs that do not change what the loop computes (where it is written, whether it resumes,
# how many chunks of the folder's run a rollback keeps)
NOT_IN_SIGNATURE = {"output_folder", "resume", "from_chunk", GRAPH_INPUT}


def is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def ancestors(get_node: Callable[[str], dict], node_id: str) -> dict[str, list[str]]:
    """Every node ``node_id`` depends on, with the nodes that use it: ``{ancestor: [children]}``."""
    up: dict[str, list[str]] = {}
    todo = [node_id]
    while todo:
        nid = todo.pop()
        for v in get_node(nid).get("inputs", {}).values():
            if is_link(v):
                parent = v[0]
                if parent not in up:
                    up[parent] = []
                    todo.append(parent)
                if nid not in up[parent]:
                    up[parent].append(nid)
    return up


def body(get_node: Callable[[str], dict], start_id: str, end_id: str) -> list[str]:
    """The nodes on a path from Loop Start to Loop End (both included): what runs once per chunk."""
    up = ancestors(get_node, end_id)
    if start_id not in up:
        raise ValueError(f"Loop End (node {end_id}) is not connected to Loop Start (node {start_id})")
    contained = {start_id, end_id}
    todo = [start_id]
    while todo:
        for child in up.get(todo.pop(), []):
            if child not in contained:
                contained.add(child)
                todo.append(child)
    return sorted(contained, key=_id_key)


def start_of(get_node: Callable[[str], dict], end_id: str) -> str:
    """The Loop Start (or its next-chunk copy) that Loop End's ``loop`` input comes from."""
    link = get_node(end_id).get("inputs", {}).get("loop")
    if not is_link(link):
        raise ValueError("Loop End's 'loop' input must be connected to a WorldWarp Loop Start")
    nid = link[0]
    if get_node(nid)["class_type"] not in (LOOP_START, LOOP_NEXT):
        raise ValueError(f"Loop End's 'loop' input comes from a {get_node(nid)['class_type']} node; connect it to "
                         "the 'loop' output of WorldWarp Loop Start")
    return nid


def ends_of(get_node: Callable[[str], dict], node_ids: Iterable[str], start_id: str) -> list[str]:
    """The Loop End nodes whose ``loop`` input comes from ``start_id``."""
    out = []
    for nid in node_ids:
        node = get_node(nid)
        link = node.get("inputs", {}).get("loop")
        if node.get("class_type") == LOOP_END and is_link(link) and link[0] == start_id:
            out.append(nid)
    return sorted(out, key=_id_key)


def _name(get_node, nid: str, display: Callable[[str], str]) -> str:
    kind = get_node(nid).get("class_type", "?")
    return f"{NAMES.get(kind, kind)} (node {display(nid)})"


def check_wiring(get_node: Callable[[str], dict], node_ids: Iterable[str], start_id: str,
                 display: Callable[[str], str] = str) -> str:
    """The one Loop End that closes Loop Start ``start_id`` in the user's graph (``node_ids``: its
    nodes, not expansion copies), or one ``ValueError`` line naming the nodes of a wrong wiring:
    no Loop End or several on one Loop Start, a body that reads another Loop Start, or a Loop
    Next placed by hand. Run before any chunk (Loop Start and Loop End call it)."""
    node_ids = list(node_ids)
    for nid in sorted(node_ids, key=_id_key):
        if get_node(nid).get("class_type") == LOOP_NEXT:
            refuse_hand_placed(get_node, nid, display)
    ends = ends_of(get_node, node_ids, start_id)
    start = _name(get_node, start_id, display)
    if not ends:
        raise ValueError(f"{start} has no WorldWarp Loop End: connect its 'loop' output to a Loop End's 'loop' input")
    if len(ends) > 1:
        raise ValueError(f"{start} feeds {len(ends)} Loop Ends (nodes {', '.join(display(e) for e in ends)}); a Loop "
                         "Start closes with one Loop End: remove the extra ones or give each its own Loop Start")
    end = ends[0]
    foreign = other_starts(get_node, end, start_id)
    if foreign:
        other, reader = foreign[0]
        raise ValueError(f"{_name(get_node, reader, display)} in the loop of {_name(get_node, end, display)} reads "
                         f"{_name(get_node, other, display)}, but that Loop End closes {start}: wire the body "
                         f"from node {display(start_id)}'s outputs")
    return end


def refuse_hand_placed(get_node: Callable[[str], dict], nid: str, display: Callable[[str], str] = str) -> None:
    """A Loop Next in the user's graph (only Loop End's expansion places it)."""
    raise ValueError(f"{_name(get_node, nid, display)} is placed by Loop End only; delete it and connect "
                     "Loop End's 'loop' input to WorldWarp Loop Start's 'loop' output")


def other_starts(get_node: Callable[[str], dict], end_id: str, start_id: str) -> list[tuple[str, str]]:
    """``[(loop start, the node that reads it)]`` for every Loop Start other than ``start_id`` that
    Loop End ``end_id`` depends on without another loop's Loop End in between (a finished loop's
    outputs may feed this one; a running loop's outputs may not)."""
    found: list[tuple[str, str]] = []
    seen, todo = {end_id}, [end_id]
    while todo:
        nid = todo.pop()
        for v in get_node(nid).get("inputs", {}).values():
            if not is_link(v) or v[0] in seen:
                continue
            parent = v[0]
            seen.add(parent)
            kind = get_node(parent).get("class_type")
            if parent == start_id or kind == LOOP_END:
                continue
            if kind in (LOOP_START, LOOP_NEXT):
                found.append((parent, nid))
                continue
            todo.append(parent)
    return sorted(found, key=lambda f: _id_key(f[0]))


def mark_graphs(prompt: dict) -> dict:
    """A queued API prompt with each Loop Start given ``GRAPH_INPUT``: a digest of what its loop
    computes (``signature`` of each of its Loop Ends). ComfyUI's cache key of a node includes every
    input, so after an edit of the body Loop Start runs again -- and refuses a run folder made by
    the old graph, or a wrong wiring -- before any body node. A prompt it cannot read is returned
    as it is (ComfyUI's own validation reports it)."""
    try:
        nodes = {str(k): v for k, v in prompt.items() if isinstance(v, dict)}

        def get_node(nid):
            return nodes[nid]

        for nid, node in nodes.items():
            if node.get("class_type") == LOOP_START and isinstance(node.get("inputs"), dict):
                sig = [signature(get_node, e) for e in ends_of(get_node, nodes, nid)]
                digest = hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()[:32]
                node["inputs"][GRAPH_INPUT] = digest
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        pass
    return prompt


def signature(get_node: Callable[[str], dict], end_id: str) -> list:
    """What the loop computes: every node Loop End depends on, with its type, settings and links
    (node ids as the user's graph numbers them), less Loop Start's folder and resume switch."""
    sig = []
    for nid in sorted(ancestors(get_node, end_id), key=_id_key) + [end_id]:
        node = get_node(nid)
        inputs = {}
        for k, v in sorted(node.get("inputs", {}).items()):
            if node["class_type"] == LOOP_START and k in NOT_IN_SIGNATURE:
                continue
            inputs[k] = ["link", v[0], v[1]] if is_link(v) else (v if isinstance(v, (str, int, float, bool))
                                                                  or v is None else repr(v))
        sig.append([nid, node["class_type"], inputs])
    return sig


def expand_next(get_node: Callable[[str], dict], start_id: str, end_id: str, state, graph,
                display_id: Callable[[str], str] = str):
    """The body cloned once more into ``graph`` (a ``GraphBuilder``): Loop Start becomes Loop Next
    fed with ``state``, every other body node is copied with its inputs (links inside the body go to
    the copies), Loop End is copied so the copy decides whether to go on. Returns the copied Loop
    End, whose outputs become this Loop End's. Copies show their progress on the original nodes."""
    nodes = body(get_node, start_id, end_id)
    for nid in nodes:
        original = get_node(nid)
        if nid == start_id:
            node = graph.node(LOOP_NEXT, nid)
        else:
            node = graph.node(original["class_type"], "Recurse" if nid == end_id else nid)
        node.set_override_display_id(display_id(nid))
    for nid in nodes:
        node = graph.lookup_node("Recurse" if nid == end_id else nid)
        if nid == start_id:
            node.set_input("loop", state)
            continue
        for k, v in get_node(nid).get("inputs", {}).items():
            if is_link(v) and v[0] in nodes:
                node.set_input(k, graph.lookup_node("Recurse" if v[0] == end_id else v[0]).out(v[1]))
            else:
                node.set_input(k, v)
    return graph.lookup_node("Recurse")


def _id_key(nid: str):
    parts = str(nid).split(".")
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


# ----------------------------------------------------------------------------- inside ComfyUI
def execute(cls, fn: Callable, env, role: str, kwargs: dict, n_outputs: int):
    """Loop Start / Next / End as ComfyUI runs them: the graph they sit in (the hidden prompt and id,
    wiring checks, the signature, the expansion) is handled here; what they compute is ``fn``
    (``ops.loop_start`` / ``loop_next`` / ``loop_end``, worldwarp_core.loop)."""
    from comfy_api.latest import io

    from . import ops

    dp, uid = cls.hidden.dynprompt, cls.hidden.unique_id
    display = dp.get_display_node_id(uid) if dp is not None else uid
    kwargs.pop(GRAPH_INPUT, None)
    users = [n for n in dp.all_node_ids() if dp.get_real_node_id(n) == n] if dp is not None else []
    if role in ("start", "next"):
        if role == "start":
            sig = None
            if dp is not None:  # a wrong wiring is refused here, before any chunk
                end = check_wiring(dp.get_node, users, uid, dp.get_display_node_id)
                sig = [signature(dp.get_node, end)]
            outputs = fn(env, **kwargs, graph_signature=sig)
        else:
            if dp is not None and dp.get_real_node_id(uid) == uid:  # placed by hand, not by Loop End's expansion
                refuse_hand_placed(dp.get_node, uid, dp.get_display_node_id)
            outputs = fn(env, **kwargs)
        env.progress_text(ops.loop_status(outputs[0]), display)
        return io.NodeOutput(*outputs)
    # Loop End. The user's own Loop End checks the graph is the one the run folder was made by
    # (Loop Start's outputs may come from ComfyUI's cache while the body was edited)
    sig = None
    if dp is not None and dp.get_real_node_id(uid) == uid:
        start = start_of(dp.get_node, uid)
        if check_wiring(dp.get_node, users, start, dp.get_display_node_id) != uid:
            raise ValueError(f"WorldWarp Loop End (node {uid}) does not close the loop it is wired to")
        sig = [signature(dp.get_node, uid)]
    state, outputs = fn(env, **kwargs, graph_signature=sig)
    if outputs is not None:
        return io.NodeOutput(*outputs)
    from comfy_execution.graph_utils import GraphBuilder

    graph = GraphBuilder()
    start = start_of(dp.get_node, uid)
    end = expand_next(dp.get_node, start, uid, state, graph, dp.get_display_node_id)
    return io.NodeOutput(*[end.out(i) for i in range(n_outputs)], expand=graph.finalize())
