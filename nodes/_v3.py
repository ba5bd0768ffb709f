"""WorldWarp ComfyUI nodes (V3 schema), built from ``specs.SPECS`` around ``ops`` functions."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import ops
from .comfy_env import ComfyEnv, register_model_folder
from .specs import CUSTOM_TYPES, SPECS, In, NodeSpec

register_model_folder()
ENV = ComfyEnv()
_CUSTOM = {name: io.Custom(name) for name in CUSTOM_TYPES}
_BASIC = {"IMAGE": io.Image, "MASK": io.Mask, "STRING": io.String, "CONDITIONING": io.Conditioning,
          "SPLAT": io.Splat, "LOAD3D_CAMERA": io.Load3DCamera, "MODEL": io.Model, "VAE": io.Vae, "CLIP": io.Clip,
          "INT": io.Int, "VIDEO": io.Video}


def _socket(kind: str):
    return _CUSTOM.get(kind) or _BASIC[kind]


def _multi(kind: str, name: str, **common):
    """A socket that takes several types, e.g. ``WORLDWARP_MODEL,MODEL``."""
    return io.MultiType.Input(name, types=[_socket(k) for k in kind.split(",")], **common)


def _input(spec: In):
    common = {"tooltip": spec.tooltip, "optional": spec.optional}
    if spec.lazy:
        common["lazy"] = True
    if spec.kind == "INT":
        return io.Int.Input(spec.name, default=spec.default, min=spec.min, max=spec.max, step=spec.step, **common)
    if spec.kind == "FLOAT":
        return io.Float.Input(spec.name, default=spec.default, min=spec.min, max=spec.max, step=spec.step, **common)
    if spec.kind == "BOOLEAN":
        return io.Boolean.Input(spec.name, default=spec.default, **common)
    if spec.kind == "STRING":
        return io.String.Input(spec.name, default=spec.default, multiline=spec.multiline, **common)
    if spec.kind == "COMBO":
        options = spec.options(ENV) if callable(spec.options) else list(spec.options)
        default = spec.default if spec.default in options else (options[0] if options else None)
        return io.Combo.Input(spec.name, options=options, default=default, **common)
    if "," in spec.kind:
        return _multi(spec.kind, spec.name, **common)
    return _socket(spec.kind).Input(spec.name, **common)


def _make_node(spec: NodeSpec) -> type[io.ComfyNode]:
    role = spec.extra.get("loop")

    def define_schema(cls):
        return io.Schema(node_id=spec.node_id, display_name=spec.display_name, category=spec.category,
                         description=spec.description, inputs=[_input(i) for i in spec.inputs],
                         outputs=[_socket(o.kind).Output(display_name=o.name) for o in spec.outputs],
                         is_output_node=spec.output_node,
                         hidden=[io.Hidden.unique_id, io.Hidden.dynprompt] if role else [],
                         enable_expand=role == "end", is_dev_only=role == "next")

    def check_lazy_status(cls, **kwargs):
        """Loop End asks for the body's outputs only when the chunk is not in the run folder yet (a
        resumed finished run, a re-queue after an interrupt): a saved chunk's body never runs again."""
        if ops.chunk_saved(kwargs.get("loop")):
            return []
        return [i.name for i in spec.inputs if i.lazy and kwargs.get(i.name) is None]

    def execute(cls, **kwargs):
        if role:
            return _loop_execute(cls, spec, role, kwargs)
        from comfy_api.latest import ui as comfy_ui

        outputs = spec.fn(ENV, **kwargs)
        ui = None
        if "ui" in spec.extra:
            ui = spec.extra["ui"](outputs, **kwargs)
        elif spec.node_id == "WorldWarpPreviewSchedule":
            ui = comfy_ui.PreviewImage(outputs[0], cls=cls)
        elif getattr(outputs, "ui_text", None):  # save nodes: where the files went (web/worldwarp.js shows it)
            ui = comfy_ui.PreviewText(outputs.ui_text)
        return io.NodeOutput(*outputs, ui=ui)

    members = {"define_schema": classmethod(define_schema), "execute": classmethod(execute),
               "__doc__": spec.description}
    if any(i.lazy for i in spec.inputs):
        members["check_lazy_status"] = classmethod(check_lazy_status)
    return type(spec.node_id, (io.ComfyNode,), members)


def _loop_execute(cls, spec: NodeSpec, role: str, kwargs: dict) -> io.NodeOutput:
    """Loop Start / Next / End inside ComfyUI: the graph they sit in (ids, expansion) is theirs;
    what they compute is ``ops`` (worldwarp_core.loop)."""
    from . import loop_graph

    dp, uid = cls.hidden.dynprompt, cls.hidden.unique_id
    display = dp.get_display_node_id(uid) if dp is not None else uid
    kwargs.pop(loop_graph.GRAPH_INPUT, None)
    users = [n for n in dp.all_node_ids() if dp.get_real_node_id(n) == n] if dp is not None else []
    if role == "start":
        sig = None
        if dp is not None:  # a wrong wiring is refused here, before any chunk
            end = loop_graph.check_wiring(dp.get_node, users, uid, dp.get_display_node_id)
            sig = [loop_graph.signature(dp.get_node, end)]
        outputs = spec.fn(ENV, **kwargs, graph_signature=sig)
    elif role == "next":
        if dp is not None and dp.get_real_node_id(uid) == uid:  # placed by hand, not by Loop End's expansion
            loop_graph.refuse_hand_placed(dp.get_node, uid, dp.get_display_node_id)
        outputs = spec.fn(ENV, **kwargs)
    if role in ("start", "next"):
        ENV.progress_text(ops.loop_status(outputs[0]), display)
        return io.NodeOutput(*outputs)
    # Loop End. The user's own Loop End checks the graph is the one the run folder was made by
    # (Loop Start's outputs may come from ComfyUI's cache while the body was edited)
    sig = None
    if dp is not None and dp.get_real_node_id(uid) == uid:
        start = loop_graph.start_of(dp.get_node, uid)
        if loop_graph.check_wiring(dp.get_node, users, start, dp.get_display_node_id) != uid:
            raise ValueError(f"WorldWarp Loop End (node {uid}) does not close the loop it is wired to")
        sig = [loop_graph.signature(dp.get_node, uid)]
    state, outputs = spec.fn(ENV, **kwargs, graph_signature=sig)
    if outputs is not None:
        return io.NodeOutput(*outputs)
    from comfy_execution.graph_utils import GraphBuilder

    graph = GraphBuilder()
    start = loop_graph.start_of(dp.get_node, uid)
    end = loop_graph.expand_next(dp.get_node, start, uid, state, graph, dp.get_display_node_id)
    return io.NodeOutput(*[end.out(i) for i in range(len(spec.outputs))], expand=graph.finalize())


NODES = [_make_node(s) for s in SPECS]


class WorldWarpExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> WorldWarpExtension:
    return WorldWarpExtension()


def _register_routes() -> None:
    """POST /worldwarp/trajectory_preview: the camera path the Camera Trajectory node would make,
    computed by the same core function, for the frontend's live preview (web/worldwarp.js).
    Validation, limits and the off-loop worker are in ``nodes/preview.py``."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    from . import preview

    @PromptServer.instance.routes.post("/worldwarp/trajectory_preview")
    async def trajectory_preview(request):
        status, text = await preview.serve(request, preview.MAX_BODY_BYTES, preview.respond)
        return web.Response(text=text, status=status, content_type="application/json")

    # the Camera Director's editor: the same body checks and off-loop worker (nodes/director.py)
    from . import director

    def director_route(name):
        async def respond(raw):
            return await director.respond(name, raw)

        async def answer(request):
            status, text = await preview.serve(request, director.MAX_BODY_BYTES, respond)
            return web.Response(text=text, status=status, content_type="application/json")

        PromptServer.instance.routes.post(f"/worldwarp/director/{name}")(answer)

    for name in director.HANDLERS:
        director_route(name)


def _register_schedule_route() -> None:
    """POST /worldwarp/schedule_preview: σ over the steps of context, warped tokens and holes for the
    Preview Noise Schedule node's live preview (``nodes/schedule_preview.py``)."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return

    from . import preview, schedule_preview

    @PromptServer.instance.routes.post("/worldwarp/schedule_preview")
    async def schedule_curves(request):
        status, text = await preview.serve(request, schedule_preview.MAX_BODY_BYTES,
                                           schedule_preview.respond_off_loop)
        return web.Response(text=text, status=status, content_type="application/json")


def _register_prompt_handler() -> None:
    """Every queued prompt: each Loop Start gets a digest of its loop's graph as an input
    (``loop_graph.mark_graphs``), so an edited body makes Loop Start run and check again first."""
    try:
        from server import PromptServer
    except ImportError:
        return
    from . import loop_graph

    def mark(json_data):
        if isinstance(json_data, dict) and isinstance(json_data.get("prompt"), dict):
            loop_graph.mark_graphs(json_data["prompt"])
        return json_data

    PromptServer.instance.add_on_prompt_handler(mark)


_register_routes()
_register_schedule_route()
_register_prompt_handler()
